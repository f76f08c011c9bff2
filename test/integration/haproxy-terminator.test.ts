import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import type { StateBody } from '../../src/admin/schemas.js'
import { pushesNeeded } from '../../src/haproxy/tls-keys.js'
import { runCli, serverRow } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { pollUntil, startHaproxy, TCP_DEFAULTS, type RunningHaproxy } from '../helpers/haproxy.js'
import { agentUntil, farmRing, startHaproxyNode, type HaproxyNode } from '../helpers/haproxy-node.js'
import { sClient } from '../helpers/openssl.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'
import { tls13TicketName } from '../helpers/tls-client.js'

/**
 * Three nodes where a real local HAProxy 2.6 terminates TLS and `tlsfleet node --terminator
 * haproxy` companions it, behind a real front HAProxy with agent-check: farm-wide tickets
 * across the HAProxys, rotation and expiry of the ring, a restarted local HAProxy repaired
 * before its agent says up, and the agent taking a node out when its HAProxy is gone.
 */

// Short periods so the test crosses rotations quickly (long enough for a few s_client runs on a
// busy machine); the ring keeps the previous key only.
const ROTATION_S = 5
const PERIOD_MS = ROTATION_S * 1000

let dir: string
let secret: string
let front: RunningHaproxy
let backend: Awaited<ReturnType<typeof startRecordingBackend>>
const nodes: HaproxyNode[] = []
const startedAt = Date.now()

const node = (i: number): HaproxyNode => nodes[i] as HaproxyNode

/** Wait until `offsetMs` into the next rotation period (after every companion pushed its key). */
async function nextPeriod (offsetMs = 400): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, PERIOD_MS - (Date.now() % PERIOD_MS) + offsetMs))
}

/** Wait, if needed, until the clock is at least `offsetMs` into the current period. */
async function intoPeriod (offsetMs = 400): Promise<void> {
  const phase = Date.now() % PERIOD_MS
  if (phase < offsetMs) await new Promise((resolve) => setTimeout(resolve, offsetMs - phase))
  else if (phase > PERIOD_MS - 1200) await nextPeriod(offsetMs)
}

/** The ring a local HAProxy holds is the farm's (at this instant or just before a boundary). */
async function holdsFarmRing (member: HaproxyNode): Promise<boolean> {
  const actual = await member.haproxy.api.showTlsKeys(member.keyFile)
  const now = Date.now()
  return [now, now - 300].some((at) => pushesNeeded(actual, farmRing(secret, ROTATION_S, at).lines) === 0)
}

before(async () => {
  dir = tempDir()
  const cert = makeCertificate(dir, 'farm', ['localhost'])
  secret = writeFarmSecret(dir)
  backend = await startRecordingBackend()
  const started = await Promise.allSettled(['n1', 'n2', 'n3'].map(async (name) => await startHaproxyNode({ dir, name, cert, secret, rotationSeconds: ROTATION_S, backendPort: backend.port })))
  for (const result of started) if (result.status === 'fulfilled') nodes.push(result.value)
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed !== undefined) throw failed.reason
  front = await startHaproxy(({ ports }) => `${TCP_DEFAULTS}
frontend fe
  bind 127.0.0.1:${ports[0] as number}
  default_backend be

backend be
  balance roundrobin
  default-server weight 100 send-proxy-v2 check inter 300 fall 1 rise 1 agent-check agent-inter 300 agent-send "hello\\n"
${nodes.map((n) => `  server ${n.name} 127.0.0.1:${n.proxyPort} agent-port ${n.agentPort}`).join('\n')}
`, { ports: 1 })
  await pollUntil('all three servers UP', async () => {
    const rows = await Promise.all(nodes.map(async (n) => await serverRow(front.api, 'be', n.name)))
    return rows.every((r) => r.status === 'UP') ? true : undefined
  }, 10_000)
})

after(async () => {
  await Promise.all(nodes.map(async (n) => await n.stop()))
  await front?.stop()
  await backend?.close()
})

test('a TLS 1.3 ticket from node 1 resumes on nodes 2 and 3, still across a rotation, and no more once its key left the ring', async () => {
  await intoPeriod()
  const sess = path.join(dir, 'rotation.sess')
  const first = await sClient({ port: node(0).port, servername: 'localhost', tls: '1.3', sessOut: sess })
  assert.equal(first.protocol, 'TLSv1.3', first.output)
  assert.equal(first.reused, false)
  for (const i of [1, 2]) assert.equal((await sClient({ port: node(i).port, servername: 'localhost', tls: '1.3', sessIn: sess })).reused, true, `node ${i + 1} refused node 1's ticket`)

  await nextPeriod()
  // One rotation later the issuing key is the previous one: every node still accepts it.
  for (const i of [1, 2, 0]) {
    const again = await sClient({ port: node(i).port, servername: 'localhost', tls: '1.3', sessIn: sess })
    assert.equal(again.reused, true, `node ${i + 1} refused the ticket one rotation later:\n${again.output}`)
  }

  await nextPeriod()
  // Two rotations later its key left every ring: a full handshake everywhere.
  for (const i of [0, 1, 2]) {
    const late = await sClient({ port: node(i).port, servername: 'localhost', tls: '1.3', sessIn: sess })
    assert.equal(late.protocol, 'TLSv1.3', late.output)
    assert.equal(late.reused, false, `node ${i + 1} still resumed a ticket whose key should be gone`)
  }
})

test('every local HAProxy holds the farm\'s ring and encrypts with the current epoch\'s key; status and metrics say so', async () => {
  await intoPeriod()
  for (const n of nodes) assert.equal(await holdsFarmRing(n), true, `${n.name}'s ring is not the farm's`)
  const ring = farmRing(secret, ROTATION_S)
  const ticketName = await tls13TicketName(node(1).port)
  // The key name is the farm tag and the epoch: the ticket was encrypted with the middle key.
  assert.deepEqual(ticketName, Buffer.from(ring.lines[1] as string, 'base64').subarray(0, 16))

  for (const n of nodes) {
    assert.ok(await n.node.metric('tlsfleet_ticket_key_updates_total', { reason: 'rotation' }) >= 2, `${n.name} pushed no rotation`)
    assert.ok(Math.abs(await n.node.metric('tlsfleet_ticket_key_ring_epoch') - ring.epoch) <= 1)
    assert.equal(await n.node.metric('tlsfleet_terminator_serving'), 1)
    assert.equal(await n.node.metric('tlsfleet_workers', { state: 'listening' }), 0)
  }
  // HAProxy's handshake counters, under tlsfleet's names.
  assert.ok(await node(0).node.metric('tlsfleet_handshakes_total', { result: 'full' }) >= 1)
  assert.ok(await node(1).node.metric('tlsfleet_handshakes_total', { result: 'resumed' }) >= 1)

  const state = await (await fetch(`${node(0).node.adminUrl}/v1/state`)).json() as StateBody
  assert.equal(state.terminator?.kind, 'haproxy')
  assert.equal(state.terminator?.serving, true)
  assert.equal(state.terminator?.ticketKeys?.current, true)
  assert.deepEqual(state.terminator?.frontends, [{ name: 'tls_in', status: 'OPEN' }])
  assert.equal(state.agentReply, 'ready up 100%')
  const status = await runCli(['status', '--admin', node(0).node.adminUrl])
  assert.equal(status.code, 0, status.stderr)
  assert.match(status.stdout, /terminator\s+haproxy via \S+admin\.sock \(pid \d+, 2\.6[^)]*\): serving/)
  assert.match(status.stdout, /ticket keys\s+\S+tls-ticket-keys: the farm's ring \(epoch \d+\), \d+ rotations/)
})

test('the key file follows the ring: after a rotation it holds the farm\'s ring, so a -sf reload serves it at once and its first ticket resumes on another node', async () => {
  const n2 = node(1)
  // Two rotations since haproxy-keys wrote the file: a file left as written would now hold a
  // ring whose encrypting key no other node still has.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, startedAt + 2 * PERIOD_MS - Date.now())))
  await intoPeriod()
  const ring = farmRing(secret, ROTATION_S)
  // Written at the start, rotations ago; rewritten by the companion after each rotation.
  const onDisk = fs.readFileSync(n2.keyFile, 'utf8').trim().split('\n')
  assert.deepEqual(onDisk, ring.lines, 'the key file does not hold the ring the companion pushed')
  assert.equal(fs.statSync(n2.keyFile).mode & 0o777, 0o600)
  const oldPid = n2.haproxy.pid
  await n2.reloadHaproxy()
  assert.notEqual(n2.haproxy.pid, oldPid)
  // At once, before the companion's next check could repair anything.
  const sess = path.join(dir, 'reload.sess')
  const issued = await sClient({ port: n2.port, servername: 'localhost', tls: '1.3', sessOut: sess })
  assert.equal(issued.reused, false)
  const resumed = await sClient({ port: node(0).port, servername: 'localhost', tls: '1.3', sessIn: sess })
  assert.equal(resumed.reused, true, `a ticket from the reloaded node 2 did not resume on node 1:\n${resumed.output}`)
  assert.equal(await holdsFarmRing(n2), true)
  assert.match(await agentUntil(n2, /^ready up/), /^ready up 100%/)
})

test('drain, maint and ready act as on a tlsfleet-terminated node: the agent tells the front HAProxy', async () => {
  const n1 = node(0)
  for (const [command, status] of [['drain', /^DRAIN/], ['maint', /^MAINT/], ['ready', /^UP$/]] as const) {
    const result = await runCli([command, '--admin', n1.node.adminUrl])
    assert.equal(result.code, 0, result.stdout + result.stderr)
    await pollUntil(`front HAProxy shows n1 ${command}`, async () => status.test((await serverRow(front.api, 'be', 'n1')).status) ? true : undefined)
  }
})

test('a paused frontend takes the node down through its agent, and back up when resumed', async () => {
  const n2 = node(1)
  await n2.haproxy.api.silentCommand('disable frontend tls_in')
  const down = await agentUntil(n2, /^ready down/)
  assert.match(down, /#local haproxy frontend tls_in is PAUSED/)
  await pollUntil('front HAProxy marks n2 DOWN', async () => /^DOWN/.test((await serverRow(front.api, 'be', 'n2')).status) ? true : undefined)
  await n2.haproxy.api.silentCommand('enable frontend tls_in')
  assert.equal(await agentUntil(n2, /^ready up/), 'ready up 100%\n')
})

test('local HAProxy stopped: agent down, front marks it DOWN; restarted from its old key file: the ring is repaired before the agent says up, and other nodes\' tickets resume there', async () => {
  const n3 = node(2)
  const repairsBefore = await n3.node.metric('tlsfleet_ticket_key_updates_total', { reason: 'repair' })
  await n3.haproxy.stop()
  const down = await agentUntil(n3, /^ready down/)
  assert.match(down, /#local haproxy unreachable at /)
  // DOWN, and by the agent's word (its health check fails too: the port is closed).
  await pollUntil('front HAProxy marks n3 DOWN, with the agent\'s reason', async () => {
    const r = await serverRow(front.api, 'be', 'n3')
    return /^DOWN/.test(r.status) && /local haproxy unreachable/.test(r.last_agt ?? '') ? r : undefined
  })
  // Its frontends' last known status is not shown as if it were still so.
  const state = await (await fetch(`${n3.node.adminUrl}/v1/state`)).json() as { terminator?: { frontends?: unknown[] } }
  assert.deepEqual(state.terminator?.frontends, [])

  // The companion keeps the key file current; an old one (a restored copy, a file written while
  // the companion was away) is what the repair is for.
  const stale = farmRing(secret, ROTATION_S, Date.now() - 3 * PERIOD_MS).lines
  fs.writeFileSync(n3.keyFile, stale.join('\n') + '\n', { mode: 0o600 })
  assert.ok(pushesNeeded(stale, farmRing(secret, ROTATION_S).lines) > 0)

  await n3.startHaproxy()
  // Poll the agent as fast as HAProxy would; the first "up" must find the farm's ring in place.
  const deadline = Date.now() + 8000
  let sawUp = false
  while (!sawUp && Date.now() < deadline) {
    const line = await n3.agent()
    if (/^ready up/.test(line)) {
      sawUp = true
      assert.equal(await holdsFarmRing(n3), true, 'the agent said up before the ring was repaired')
    } else {
      assert.match(line, /^ready down/)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  assert.equal(sawUp, true, 'the agent never said up after the restart')
  const repairs = await n3.node.metric('tlsfleet_ticket_key_updates_total', { reason: 'repair' })
  const ringLogs = n3.node.logs.filter((l) => /ticket key|haproxy/.test(String(l.msg))).slice(-8)
  assert.ok(repairs > repairsBefore, `repairs ${repairsBefore} -> ${repairs}; the node's last haproxy log lines:\n${ringLogs.map((l) => JSON.stringify(l)).join('\n')}`)
  assert.ok(await n3.node.metric('tlsfleet_terminator_restarts_total') >= 1)

  await intoPeriod()
  for (const version of ['1.3', '1.2'] as const) {
    const sess = path.join(dir, `restart-${version}.sess`)
    const issued = await sClient({ port: node(0).port, servername: 'localhost', tls: version, sessOut: sess })
    assert.equal(issued.reused, false)
    const resumed = await sClient({ port: n3.port, servername: 'localhost', tls: version, sessIn: sess })
    assert.equal(resumed.reused, true, `TLS ${version} ticket from node 1 did not resume on the restarted node 3:\n${resumed.output}`)
  }
  await pollUntil('front HAProxy marks n3 UP again', async () => (await serverRow(front.api, 'be', 'n3')).status === 'UP' ? true : undefined)
})

test('no ticket key ever reaches a log line, stderr, /metrics or /v1/state', async () => {
  const lines = new Set<string>()
  for (let at = startedAt - 3 * PERIOD_MS; at <= Date.now() + 3 * PERIOD_MS; at += PERIOD_MS) {
    for (const line of farmRing(secret, ROTATION_S, at).lines) {
      lines.add(line)
      const raw = Buffer.from(line, 'base64')
      for (const half of [raw.subarray(16, 32), raw.subarray(32, 48)]) { lines.add(half.toString('hex')); lines.add(half.toString('base64')) }
    }
  }
  for (const n of nodes) {
    const texts = [
      n.node.logs.map((l) => JSON.stringify(l)).join('\n'),
      n.node.stderr(),
      await (await fetch(`${n.node.adminUrl}/metrics`)).text(),
      await (await fetch(`${n.node.adminUrl}/v1/state`)).text()
    ]
    assert.ok(n.node.logs.some((l) => l.msg === 'ticket key rotated in the local haproxy'), `${n.name} logged no rotation`)
    for (const text of texts) for (const secretText of lines) assert.equal(text.includes(secretText), false, `${n.name} leaked key material`)
  }
})
