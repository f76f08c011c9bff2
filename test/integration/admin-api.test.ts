import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import type { CacheBody, CertificatesBody, PeersBody, StateBody } from '../../src/admin/schemas.js'
import { agentSays, runCli, writeToken } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { CLI, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { freePorts } from '../helpers/ports.js'

/**
 * The admin API of a node started with --admin-token-file: schemas, JSON errors, the bearer
 * token on every route but /health, and bad input that changes nothing.
 */

let node: RunningNode
let dir: string
let token: string
let tokenFile: string
let agentPort: number
let tlsPort: number

before(async () => {
  dir = tempDir()
  ;({ file: tokenFile, token } = writeToken(dir))
  let admin: number
  ;[tlsPort, admin, agentPort] = await freePorts(3) as [number, number, number]
  node = await startNode([
    '--workers', '2', '--listen', `127.0.0.1:${tlsPort}`, '--cert', makeCertificate(dir, 'n', ['localhost']),
    '--agent-listen', `127.0.0.1:${agentPort}`, '--admin-token-file', tokenFile, '--node-id', 'admin-node'
  ], { adminPort: admin })
})

after(async () => { await node?.stop() })

const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` })

async function call (method: string, route: string, opts: { body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${node.adminUrl}${route}`, {
    method,
    headers: { ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers },
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    signal: AbortSignal.timeout(5000)
  })
  const text = await res.text()
  let json: Record<string, unknown>
  try { json = JSON.parse(text) as Record<string, unknown> } catch { throw new Error(`${method} ${route}: not JSON: ${text}`) }
  return { status: res.status, json, headers: res.headers }
}

const currentState = async (): Promise<string> => (await call('GET', '/v1/state', { headers: auth() })).json.state as string

test('/health needs no token (HAProxy httpchk); every other route does', async () => {
  const health = await call('GET', '/health')
  assert.equal(health.status, 200)
  assert.deepEqual(health.json, { status: 'ok', state: 'ready', health: 'up' })
  for (const [method, route] of [['GET', '/v1/state'], ['GET', '/v1/cache'], ['GET', '/v1/peers'], ['GET', '/v1/certificates'], ['GET', '/metrics'], ['POST', '/v1/clients/move']] as const) {
    const res = await call(method, route)
    assert.equal(res.status, 401, `${method} ${route}`)
    assert.equal(res.json.error, 'Unauthorized')
    assert.match(res.json.message as string, /no Authorization header.*Bearer/)
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/)
  }
  const wrong = await call('GET', '/v1/state', { headers: { authorization: 'Bearer not-the-token-at-all' } })
  assert.equal(wrong.status, 401)
  assert.match(wrong.json.message as string, /wrong bearer token/)
  const put = await call('PUT', '/v1/state', { body: '{"state":"maint"}' })
  assert.equal(put.status, 401)
  assert.equal(await currentState(), 'ready', 'an unauthenticated PUT changed the state')  // No such route or method: 404 naming the routes, with or without a token (not a 401 that
  // blames the token for a typo).
  for (const [method, route] of [['DELETE', '/v1/state'], ['POST', '/metrics'], ['GET', '/v1/nope']] as const) {
    for (const headers of [{}, auth()]) {
      const res = await call(method, route, { headers })
      assert.equal(res.status, 404, `${method} ${route}`)
      assert.match(res.json.message as string, new RegExp(`^no route ${method} ${route}; routes: `))
    }
  }
  assert.equal(await currentState(), 'ready')
})

test('bad requests get JSON errors that say what was wrong, and nothing changes', async () => {
  const cases: Array<{ body?: string; type?: string; status: number; message: RegExp }> = [
    { body: '{"state":', status: 400, message: /not valid JSON/ },
    { body: '{"state":"drain","__proto__":{"admin":true}}', status: 400, message: /not valid JSON .*, or it has a "__proto__" or "constructor" key, which is refused/ },
    { body: '{"state":"paused"}', status: 400, message: /body\.state must be one of "ready", "drain", "maint"/ },
    { body: '{}', status: 400, message: /must have required property 'state'/ },
    { body: '{"state":"drain","force":true}', status: 400, message: /unknown field "force"/ },
    { body: '{"state":"drain","moveClients":"yes"}', status: 400, message: /moveClients must be boolean/ },
    { body: '["drain"]', status: 400, message: /body must be object/ },
    { body: 'drain', type: 'text/plain', status: 415, message: /Unsupported Media Type.*send the body as Content-Type: application\/json/i },
    { body: 'state=drain', type: 'application/x-www-form-urlencoded', status: 415, message: /Unsupported Media Type/i },
    { body: '{"state":"drain","moveClients":true}', status: 409, message: /moveClients needs --haproxy-socket/ }
  ]
  for (const c of cases) {
    const res = await call('PUT', '/v1/state', { body: c.body, headers: { ...auth(), ...(c.type !== undefined ? { 'content-type': c.type } : {}) } })
    assert.equal(res.status, c.status, `${c.body ?? ''}: ${JSON.stringify(res.json)}`)
    assert.equal(res.json.statusCode, c.status)
    assert.equal(typeof res.json.error, 'string')
    assert.match(res.json.message as string, c.message, c.body)
    assert.equal(await currentState(), 'ready', `${c.body ?? ''} changed the state`)
  }
  const huge = await call('PUT', '/v1/state', { body: JSON.stringify({ state: 'drain', pad: 'x'.repeat(100_000) }), headers: auth() })
  assert.equal(huge.status, 413)
  const missing = await call('GET', '/v2/everything', { headers: auth() })
  assert.equal(missing.status, 404)
  assert.match(missing.json.message as string, /no route GET \/v2\/everything/)
  assert.equal(await currentState(), 'ready')
  assert.match(await agentSays(agentPort, 'hello\n'), /^ready up \d+%\n$/, 'the agent stopped answering ready')
})

test('PUT /v1/state changes what the agent says; GET /v1/state, /v1/cache, /v1/peers describe the node', async () => {
  const drained = await call('PUT', '/v1/state', { body: '{"state":"drain"}', headers: auth() })
  assert.equal(drained.status, 200)
  assert.deepEqual(drained.json, { state: 'drain', previous: 'ready', changed: true })
  assert.match(await agentSays(agentPort), /^drain up \d+%\n$/)
  assert.equal((await call('GET', '/health')).status, 503)
  const again = await call('PUT', '/v1/state', { body: '{"state":"drain"}', headers: auth() })
  assert.deepEqual(again.json, { state: 'drain', previous: 'drain', changed: false })
  assert.equal((await call('PUT', '/v1/state', { body: '{"state":"ready"}', headers: auth() })).status, 200)
  assert.match(await agentSays(agentPort), /^ready up \d+%\n$/)

  // A TLS 1.2 session, so the caches have something to show.
  const first = await sClient({ port: tlsPort, tls: '1.2', extra: ['-no_ticket'] })
  assert.equal(first.protocol, 'TLSv1.2', first.output)
  const deadline = Date.now() + 5000
  let state: StateBody
  let cache: CacheBody
  for (;;) {
    state = (await call('GET', '/v1/state', { headers: auth() })).json as unknown as StateBody
    cache = (await call('GET', '/v1/cache', { headers: auth() })).json as unknown as CacheBody
    if ((state.handshakes.full >= 1 && cache.l1.some((w) => w.entries >= 1)) || Date.now() > deadline) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  assert.equal(state.node, 'admin-node')
  assert.equal(state.state, 'ready')
  assert.equal(state.health, 'up')
  assert.equal(state.effective, 'ready')
  assert.match(state.agentReply, /^ready up \d+%$/)
  assert.deepEqual(state.workers, { configured: 2, listening: 2, restarts: { recent: 0, windowSeconds: 60, crashLoop: false, delayMs: 0 } })
  assert.ok(state.handshakes.full >= 1, JSON.stringify(state))
  assert.equal(state.haproxy, undefined)
  assert.equal(cache.l2.entries, 1)
  assert.ok(cache.l2.bytes > 0)
  assert.equal(cache.l1.length, 2)
  assert.equal(cache.l1.reduce((n, w) => n + w.entries, 0), 1)
  assert.ok(cache.l1.every((w) => typeof w.pid === 'number' && typeof w.bytes === 'number'))
  const peers = (await call('GET', '/v1/peers', { headers: auth() })).json as unknown as PeersBody
  assert.deepEqual(peers, { sync: 'off', peers: [] })
})

test('GET /metrics: primary and worker metrics, with the agent state', async () => {
  const res = await fetch(`${node.adminUrl}/metrics`, { headers: auth() })
  assert.equal(res.status, 200)
  const text = await res.text()
  for (const line of [
    /^tlsfleet_agent_state\{state="ready"\} 1$/m,
    /^tlsfleet_agent_state\{state="down"\} 0$/m,
    /^tlsfleet_agent_weight_percent \d+$/m,
    /^tlsfleet_agent_replies_total\{state="ready"\} \d+$/m,
    /^tlsfleet_handshakes_total\{result="full",version="TLSv1.2"\} \d+$/m,
    /^# TYPE tlsfleet_session_cache_lookups_total counter$/m,
    /^tlsfleet_handshake_duration_seconds_bucket/m,
    /^tlsfleet_connections_active/m,
    /^tlsfleet_admin_requests_total\{status="401"\} \d+$/m,
    /^tlsfleet_admin_requests_total\{status="400"\} \d+$/m,
    /^process_cpu_seconds_total/m
  ]) assert.match(text, line)
})

test('/v1/certificates: each certificate served, its names, key, expiry and (without --ocsp-dir) no OCSP state', async () => {
  const res = await call('GET', '/v1/certificates', { headers: auth() })
  assert.equal(res.status, 200)
  const body = res.json as unknown as CertificatesBody
  assert.equal(body.terminator, 'tlsfleet')
  assert.equal(body.ocspStapling, false)
  assert.equal(body.certificates.length, 1)
  const [cert] = body.certificates
  assert.equal(cert?.file, path.join(dir, 'n.pem'))
  assert.deepEqual(cert?.names, ['localhost'])
  assert.equal(cert?.default, true)
  assert.equal(cert?.keyType, 'rsa')
  assert.equal(cert?.expiresInDays, 1)
  assert.ok(Math.abs(Date.parse(cert?.notAfter ?? '') - (Date.now() + 2 * 86_400_000)) < 120_000, `notAfter ${cert?.notAfter ?? ''}`)
  assert.equal(cert?.ocsp, undefined)
  // Two days left: it needs the operator; without --ocsp-dir no staple is expected.
  assert.deepEqual(cert?.attention, ['expiring'])
})

test('the CLI uses the token file; without it, it says so and exits non-zero', async () => {
  const denied = await runCli(['status', '--admin', node.adminUrl])
  assert.equal(denied.code, 1)
  assert.match(denied.stderr, /HTTP 401.*--token-file/)
  const ok = await runCli(['status', '--admin', node.adminUrl, '--token-file', tokenFile])
  assert.equal(ok.code, 0, ok.stderr)
  assert.match(ok.stdout, /^node\s+admin-node/m)
  assert.match(ok.stdout, /^L2 cache\s+\d+ entries/m)
  assert.match(ok.stdout, /^haproxy\s+no --haproxy-socket configured/m)
  // The test certificate is valid for two days: named as close to its end.
  assert.match(ok.stdout, /^certificates\s+1 served, next to expire localhost \(.*n\.pem\) on \d{4}-\d\d-\d\d$/m)
  assert.match(ok.stdout, /^\s+warning: localhost \(.*n\.pem\) expires in 1 day\(s\)$/m)
  assert.doesNotMatch(ok.stdout, /^OCSP/m, 'no OCSP row without --ocsp-dir')
  const json = await runCli(['status', '--json', '--admin', node.adminUrl, '--token-file', tokenFile])
  assert.equal((JSON.parse(json.stdout) as { state: StateBody }).state.node, 'admin-node')
  const drain = await runCli(['drain', '--admin', node.adminUrl, '--token-file', tokenFile])
  assert.equal(drain.code, 0, drain.stderr)
  assert.equal(await currentState(), 'drain')
  const ready = await runCli(['ready', '--admin', node.adminUrl, '--token-file', tokenFile])
  assert.equal(ready.code, 0, ready.stderr)
  assert.equal(await currentState(), 'ready')
})

test('the CLI refuses a token file as the node does: readable by others, too short or missing (TLSFLEET_ERR_ADMIN_TOKEN, exit 2), and sends nothing', async () => {
  // The node's own token, in a file others can read: refused, though the node would accept the token.
  const loose = path.join(dir, 'cli-loose.token')
  fs.writeFileSync(loose, token + '\n', { mode: 0o644 })
  fs.chmodSync(loose, 0o644)
  for (const { args, env } of [{ args: ['--token-file', loose], env: {} }, { args: [], env: { TLSFLEET_ADMIN_TOKEN_FILE: loose } }]) {
    const drain = await runCli(['drain', '--admin', node.adminUrl, ...args], 15_000, env)
    assert.equal(drain.code, 2, drain.stdout + drain.stderr)
    assert.match(drain.stderr, /^tlsfleet: --token-file: token file ".*cli-loose\.token": readable by group or others \(mode 644\); run chmod 600 on it \(TLSFLEET_ERR_ADMIN_TOKEN\)\n$/)
    assert.equal(await currentState(), 'ready', 'a refused token file changed the node')
  }
  const short = path.join(dir, 'cli-short.token')
  fs.writeFileSync(short, 'abc\n', { mode: 0o600 })
  const shortRun = await runCli(['status', '--admin', node.adminUrl, '--token-file', short])
  assert.equal(shortRun.code, 2)
  assert.match(shortRun.stderr, /^tlsfleet: --token-file: .*at least 16 are needed.* \(TLSFLEET_ERR_ADMIN_TOKEN\)\n$/)
  const missing = await runCli(['maint', '--admin', node.adminUrl, '--token-file', path.join(dir, 'no-such.token')])
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /^tlsfleet: --token-file: token file ".*no-such\.token": cannot read: ENOENT.* \(TLSFLEET_ERR_ADMIN_TOKEN\)\n$/)
  assert.equal(await currentState(), 'ready')
})

test('the CLI names an unreachable node and exits non-zero', async () => {
  const [free] = await freePorts(1) as [number]
  const res = await runCli(['drain', '--admin', `http://127.0.0.1:${free}`])
  assert.equal(res.code, 1)
  assert.match(res.stderr, new RegExp(`cannot reach the node's admin API at http://127.0.0.1:${free}.*ECONNREFUSED`))
})

/** Start a node that must refuse to start; returns its exit code and stderr (bounded). */
async function refusedStart (args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'node', '--log-format', 'json', '--workers', '1', ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => { child.kill('SIGKILL') }, 10_000)
    child.once('exit', (c) => { clearTimeout(t); resolve(c) })
  })
  return { code, stderr }
}

test('a node refuses an admin API on a non-loopback address without a token, and weak token files', async () => {
  const [tls, admin] = await freePorts(2) as [number, number]
  const base = ['--listen', `127.0.0.1:${tls}`, '--cert', makeCertificate(dir, 'r', ['localhost'])]
  const open = await refusedStart([...base, '--admin-listen', `0.0.0.0:${admin}`])
  assert.equal(open.code, 2)
  assert.match(open.stderr, /--admin-listen 0\.0\.0\.0:\d+ is not a loopback address: give --admin-token-file/)
  const loose = path.join(dir, 'loose.token')
  fs.writeFileSync(loose, 'a'.repeat(40), { mode: 0o644 })
  fs.chmodSync(loose, 0o644)
  const looseRun = await refusedStart([...base, '--admin-listen', `127.0.0.1:${admin}`, '--admin-token-file', loose])
  assert.equal(looseRun.code, 2)
  assert.match(looseRun.stderr, /readable by group or others \(mode 644\); run chmod 600/)
  const short = path.join(dir, 'short.token')
  fs.writeFileSync(short, 'abc\n', { mode: 0o600 })
  const shortRun = await refusedStart([...base, '--admin-listen', `127.0.0.1:${admin}`, '--admin-token-file', short])
  assert.equal(shortRun.code, 2)
  assert.match(shortRun.stderr, /at least 16 are needed/)
  const noServer = await refusedStart([...base, '--admin-listen', `127.0.0.1:${admin}`, '--haproxy-socket', '/tmp/none.sock'])
  assert.equal(noServer.code, 2)
  assert.match(noServer.stderr, /needs --haproxy-server BACKEND\/SERVER/)
})
