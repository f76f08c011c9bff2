import assert from 'node:assert/strict'
import http from 'node:http'
import { after, before, test } from 'node:test'
import type { DashboardBody } from '../../src/admin/dashboard-schema.js'
import { RedisServer } from '../../src/lab/redis-server.js'
import { ReturningClients } from '../../src/lab/returning-clients.js'
import { writeToken } from '../helpers/agent.js'
import { docsScreenshot, openBrowser, pixelsOfColor, type OpenBrowser } from '../helpers/browser.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { pollUntil, startHaproxy, TCP_DEFAULTS, type RunningHaproxy } from '../helpers/haproxy.js'
import { startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

/**
 * The live dashboard, in a real browser: two nodes sharing sessions behind a real HAProxy,
 * returning clients making handshakes through it, and Debian's Chromium looking at node n1's
 * dashboard the way an operator does (n1 has an admin token).
 */

let haproxy: RunningHaproxy
let frontPort: number
let token: string
let n2Sync: number
/** By name, as each one is up: `after` stops whichever started, even when another did not. */
const nodes = new Map<string, RunningNode>()

before(async () => {
  const dir = tempDir()
  const cert = makeCertificate(dir, 'farm', ['localhost'])
  const secret = writeFarmSecret(dir)
  ;({ token } = writeToken(dir))
  const tokenFile = `${dir}/admin.token`
  let ports: number[] = []
  haproxy = await startHaproxy((ctx) => {
    ports = ctx.ports
    frontPort = ports[0] as number
    return `${TCP_DEFAULTS}
frontend fe
  bind 127.0.0.1:${frontPort}
  default_backend be

backend be
  balance roundrobin
  default-server weight 100 send-proxy-v2 check inter 300 fall 1 rise 1 agent-check agent-inter 300
  server n1 127.0.0.1:${ports[1] as number} agent-port ${ports[2] as number}
  server n2 127.0.0.1:${ports[3] as number} agent-port ${ports[4] as number}
`
  }, { ports: 5 })
  const [sync1, sync2, admin1, admin2] = await freePorts(4) as [number, number, number, number]
  n2Sync = sync2
  const start = async (name: string, tls: number, agent: number, sync: number, peer: number, admin: number, extra: string[]): Promise<void> => {
    nodes.set(name, await startNode([
      '--workers', '1', '--listen', `127.0.0.1:${tls}`, '--proxy-protocol-in', 'v2', '--cert', cert, '--node-id', name,
      '--agent-listen', `127.0.0.1:${agent}`, '--haproxy-socket', haproxy.socketPath, '--haproxy-server', `be/${name}`,
      '--sync-listen', `127.0.0.1:${sync}`, '--sync-peer', `127.0.0.1:${peer}`, '--sync-secret-file', secret,
      '--warm-join-timeout', '0.5', ...extra
    ], { adminPort: admin, timeoutMs: 40_000 }))
  }
  // allSettled: when one node cannot start, the other has finished starting before `after` stops it.
  const started = await Promise.allSettled([
    start('n1', ports[1] as number, ports[2] as number, sync1, sync2, admin1, ['--admin-token-file', tokenFile]),
    start('n2', ports[3] as number, ports[4] as number, sync2, sync1, admin2, [])
  ])
  for (const result of started) if (result.status === 'rejected') throw result.reason
  await pollUntil('both servers UP in HAProxy', async () => {
    const rows = (await haproxy.api.showStat()).filter((r) => r.pxname === 'be' && (r.svname === 'n1' || r.svname === 'n2'))
    return rows.length === 2 && rows.every((r) => r.status === 'UP') ? true : undefined
  }, 20_000)
})

after(async () => {
  await Promise.all([...nodes.values()].map(async (n) => await n.stop()))
  await haproxy?.stop()
})

const n1 = (): RunningNode => nodes.get('n1') as RunningNode
const n2 = (): RunningNode => nodes.get('n2') as RunningNode

test('the dashboard page and its files need no token and are read-only; its data needs the token when reads do', async () => {
  const page = await fetch(`${n1().adminUrl}/`)
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/)
  assert.match(await page.text(), /<meta name="tlsfleet-token" content="required">/)
  for (const file of ['dashboard.js', 'charts.js', 'uplot.js', 'uplot.css', 'common.css', 'dashboard.css']) {
    const res = await fetch(`${n1().adminUrl}/dashboard/${file}`)
    assert.equal(res.status, 200, file)
    assert.ok((await res.text()).length > 100, file)
  }
  const refused = await fetch(`${n1().adminUrl}/v1/dashboard`)
  assert.equal(refused.status, 401)
  assert.equal(((await refused.json()) as { error: string }).error, 'Unauthorized')
  for (const path of ['/dashboard/../admin.token', '/dashboard/%2e%2e/package.json', '/dashboard/index.html']) {
    assert.equal((await fetch(`${n1().adminUrl}${path}`, { headers: { authorization: `Bearer ${token}` } })).status, 404, path)
  }
  // The page changes nothing: no method but GET (and HEAD) answers on its routes.
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const res = await fetch(`${n1().adminUrl}/`, { method, headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.status, 404, method)
  }
  // A node without a token file (reads open on loopback) serves the same page, which then reads its data directly.
  assert.match(await (await fetch(`${n2().adminUrl}/`)).text(), /content="none"/)
  // The page gets the Host check of every route but /health (a DNS-rebinding page cannot load it).
  const rebound = await new Promise<number | undefined>((resolve, reject) => {
    const url = new URL(`${n2().adminUrl}/`)
    http.get({ host: url.hostname, port: url.port, path: '/', headers: { host: 'attacker.example' } }, (res) => { res.resume(); resolve(res.statusCode) }).on('error', reject)
  })
  assert.equal(rebound, 403)
})

test('the farm\'s ticket keys: every node shows the same key name and the same next rotation', async () => {
  const read = async (node: RunningNode, headers: Record<string, string> = {}): Promise<DashboardBody> =>
    await (await fetch(`${node.adminUrl}/v1/dashboard`, { headers })).json() as DashboardBody
  const epoch = (): number => Math.floor(Date.now() / 1000 / 3600)
  const before = epoch()
  const [a, b] = await Promise.all([read(n1(), { authorization: `Bearer ${token}` }), read(n2())])
  assert.equal(a.tickets.enabled, true)
  assert.equal(a.tickets.farmWide, true)
  assert.equal(a.tickets.keyName, b.tickets.keyName)
  assert.ok(a.tickets.generation !== undefined && a.tickets.generation >= before && a.tickets.generation <= epoch(), String(a.tickets.generation))
  assert.equal(a.tickets.nextRotation, b.tickets.nextRotation)
  assert.equal(a.haproxy?.servers.length, 2)
  assert.deepEqual(a.haproxy?.servers.map((s) => [s.name, s.self]), [['n1', true], ['n2', false]])
})

test('in Chromium: state, live handshake chart, rising numbers, caches, sync and HAProxy\'s view of the farm', async () => {
  let browser: OpenBrowser | undefined
  const load = new ReturningClients({ target: { host: '127.0.0.1', port: frontPort }, clients: 12, rate: 40, maxConnections: 4000 })
  try {
    browser = await openBrowser()
    const { page } = browser
    await page.goto(`${n1().adminUrl}/`)

    // Without the token: what the public /health says, and a request for the token.
    await page.locator('[data-section="auth"]').waitFor({ state: 'visible' })
    await pollUntil('the state from /health', async () => (await page.locator('[data-field="state-badge"]').textContent()) === 'ready · up' ? true : undefined)
    assert.equal(await page.locator('[data-section="details"]').isVisible(), false)

    // A wrong token is refused and the page says so.
    await page.fill('input[name="token"]', 'not-the-token-of-this-node')
    await page.click('button[type="submit"]')
    await pollUntil('the refusal', async () => (await page.locator('[data-field="auth-message"]').textContent()) === 'The node refused that token.' ? true : undefined)
    // The browser logs the 401 it was answered: that one is expected, nothing else is.
    const refused = browser.problems.filter((p) => /status of 401/.test(p))
    assert.equal(refused.length, 1, browser.problems.join('\n'))
    browser.problems.splice(browser.problems.indexOf(refused[0] as string), 1)

    await page.fill('input[name="token"]', token)
    await page.click('button[type="submit"]')
    await page.locator('[data-section="details"]').waitFor({ state: 'visible' })
    assert.equal(await page.locator('[data-field="node"]').textContent(), 'n1')
    assert.equal(await page.locator('[data-field="state"]').textContent(), 'ready')
    assert.equal(await page.locator('[data-field="terminator"]').textContent(), 'tlsfleet\'s workers')
    assert.equal(await page.locator('[data-field="agent-reply"]').textContent().then((t) => /^ready up \d+%/.test(t ?? '')), true)

    load.start()
    const total = async (field: string): Promise<number> => Number(((await page.locator(`[data-field="${field}"]`).textContent()) ?? '').replace(/,/g, ''))
    const first = await pollUntil('handshakes on the page', async () => {
      const resumed = await total('resumed-total')
      return resumed > 0 ? resumed : undefined
    }, 15_000)
    const later = await pollUntil('the resumed count to rise', async () => {
      const resumed = await total('resumed-total')
      return resumed > first + 10 ? resumed : undefined
    }, 15_000)
    assert.ok(later > first)
    assert.ok(await total('full-total') > 0)

    // The chart drew: points in its data and the resumed series' colour on its canvas.
    const points = await pollUntil('chart points', async () => {
      const n = Number(await page.locator('[data-chart="handshakes"]').getAttribute('data-points'))
      return n >= 10 ? n : undefined
    })
    assert.ok(points >= 10)
    assert.ok(await pixelsOfColor(page, '[data-chart="handshakes"]', '#2b8a3e') > 50, 'no resumed-handshake line drawn')
    assert.ok(await pixelsOfColor(page, '[data-chart="sync"]', '#7048e8') > 20, 'no sync-out line drawn')

    // Caches, sync and the farm.
    const cacheRows = await page.locator('[data-field="cache-table"] tbody tr').allTextContents()
    assert.deepEqual(cacheRows.map((r) => r.slice(0, 2)), ['L1', 'L2'])
    const syncRows = await page.locator('[data-field="sync-table"] tbody tr').allTextContents()
    assert.ok(syncRows.some((r) => /^outsent[1-9]/.test(r.replace(/,/g, ''))), syncRows.join(' | '))
    const farm = await page.locator('[data-field="haproxy-table"] tbody tr').allTextContents()
    assert.equal(farm.length, 2, farm.join(' | '))
    assert.match(farm[0] ?? '', /^n1UP\d+/)
    assert.match(farm[1] ?? '', /^n2UP\d+/)
    assert.equal(await page.locator('[data-field="haproxy-table"] tbody tr.self').count(), 1)
    const peers = await page.locator('[data-field="peers-table"] tbody tr').allTextContents()
    assert.equal(peers.length, 1)
    assert.ok((peers[0] ?? '').startsWith(`127.0.0.1:${n2Sync}`), peers[0])
    assert.match((await page.locator('[data-field="ticket-generation"]').textContent()) ?? '', /^\d+$/)
    // The certificate, valid for two days: marked as close to its end.
    const certificates = await page.locator('[data-field="certificates-table"] tbody tr').allTextContents()
    assert.equal(certificates.length, 1, certificates.join(' | '))
    assert.match(certificates[0] ?? '', /^localhost \(default\).*farm\.pem\s*rsa\d{4}-\d\d-\d\d \(in 1 day\(s\)\)-$/)
    assert.equal(await page.locator('[data-field="certificates-table"] tbody tr.attention').count(), 1)
    assert.match((await page.locator('[data-field="certificates-note"]').textContent()) ?? '', /OCSP stapling is off/)

    await page.screenshot({ path: docsScreenshot('dashboard.png'), fullPage: true })
    assert.deepEqual(browser.problems, [])

    // The node stops: the page no longer shows the state it had.
    await load.stop()
    await n1().stop()
    await pollUntil('the badge to say the node does not answer', async () => (await page.locator('[data-field="state-badge"]').textContent()) === 'no answer' ? true : undefined, 15_000)
    assert.match((await page.locator('[data-field="problem"]').textContent()) ?? '', /the figures below are the last ones read/)
  } finally {
    await load.stop()
    await browser?.close()
  }
})

test('in Chromium: the shared session store\'s connection, marked while it is lost, and none without a store', async () => {
  const dir = tempDir()
  const redis = await RedisServer.start()
  await redis.kill() // its port now closed; start() brings it back on the same port
  const [port, admin] = await freePorts(2) as [number, number]
  let node: RunningNode | undefined
  let browser: OpenBrowser | undefined
  try {
    node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--cert', makeCertificate(dir, 'store', ['localhost']),
      '--sync-secret-file', writeFarmSecret(dir), '--session-store', redis.url], { adminPort: admin, timeoutMs: 40_000 })
    browser = await openBrowser()
    const { page } = browser
    await page.goto(`${node.adminUrl}/`)
    const connection = page.locator('[data-field="store-connection"]')
    await connection.waitFor({ state: 'visible' })
    // Down since the start: the node is healthy all the same, so only this says it.
    assert.equal(await connection.textContent(), 'not connected: serving without it, reconnecting')
    assert.equal(await connection.getAttribute('class'), 'warn')
    assert.equal(await page.locator('[data-field="health"]').textContent(), 'up')
    assert.ok(((await page.locator('[data-field="store-facts"]').textContent()) ?? '').startsWith(`store${redis.url}connection`))
    assert.match((await page.locator('[data-field="store-circuits"]').textContent()) ?? '', /^lookups (closed|open|half-open), writes (closed|open|half-open), deletes (closed|open|half-open)$/)

    await redis.start()
    await pollUntil('the page to say connected', async () => (await connection.textContent()) === 'connected' ? true : undefined, 15_000)
    assert.equal(await connection.getAttribute('class'), 'ok')

    await redis.kill()
    await pollUntil('the page to say not connected again', async () => (await connection.textContent()) !== 'connected' ? true : undefined, 15_000)
    assert.equal(await connection.getAttribute('class'), 'warn')

    // A node without --session-store says it has none.
    await page.goto(`${n2().adminUrl}/`)
    await pollUntil('n2\'s store card', async () => /^storenone \(--session-store\)/.test((await page.locator('[data-field="store-facts"]').textContent()) ?? '') ? true : undefined)
    assert.equal(await page.locator('[data-field="store-connection"]').count(), 0)
    assert.deepEqual(browser.problems, [])
  } finally {
    await browser?.close()
    await node?.stop()
    await redis.stop()
  }
})
