import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { after, test } from 'node:test'
import { agentSays } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { childPids, eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'

const dir = tempDir()
const cert = makeCertificate(dir, 'admission', ['localhost'])
const nodes: RunningNode[] = []
const sockets: net.Socket[] = []
type Backend = Awaited<ReturnType<typeof startRecordingBackend>>
const backends: Backend[] = []

after(async () => {
  for (const s of sockets) s.destroy()
  for (const n of nodes) await n.stop('SIGTERM', 5000)
  for (const b of backends) await b.close()
})

/** A node of its own, with a backend of its own. */
async function start (args: string[], host = '127.0.0.1'): Promise<{ node: RunningNode; port: number; agentPort: number; backend: Backend }> {
  const backend = await startRecordingBackend()
  backends.push(backend)
  const [port, admin, agentPort] = await freePorts(3) as [number, number, number]
  const wrap = args[0] === 'prlimit' ? args.splice(0, 2) : []
  const node = await startNode(['--listen', `${host}:${port}`, '--cert', cert, '--backend', `127.0.0.1:${backend.port}`, '--agent-listen', `127.0.0.1:${agentPort}`, ...args], { adminPort: admin, wrap })
  nodes.push(node)
  return { node, port, agentPort, backend }
}

interface Idle { socket: net.Socket; closedByServer: boolean }

/** A connection that sends nothing (a slowloris client), optionally from `localAddress`, after `header`. */
async function idle (port: number, opts: { localAddress?: string; header?: string } = {}): Promise<Idle> {
  const socket = net.connect({ host: '127.0.0.1', port, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) })
  sockets.push(socket)
  const conn: Idle = { socket, closedByServer: false }
  socket.on('error', () => {})
  socket.on('close', () => { conn.closedByServer = true })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  if (opts.header !== undefined) socket.write(opts.header)
  return conn
}

/**
 * A well-behaved client: TLS, `GET /`, reads the answer. Resolves true once a connection got its
 * answer, false when refused (closed before the handshake); bounded by `timeoutMs`.
 */
async function request (port: number, opts: { localAddress?: string; header?: string | Buffer; timeoutMs?: number } = {}): Promise<boolean> {
  return await new Promise((resolve) => {
    const raw = net.connect({ host: '127.0.0.1', port, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) })
    const done = (ok: boolean): void => { clearTimeout(timer); raw.destroy(); resolve(ok) }
    const timer = setTimeout(() => done(false), opts.timeoutMs ?? 3000)
    raw.on('error', () => done(false))
    raw.once('connect', () => {
      if (opts.header !== undefined) raw.write(opts.header)
      const socket = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' })
      let text = ''
      socket.on('error', () => done(false))
      socket.once('secureConnect', () => socket.write('GET / HTTP/1.0\r\n\r\n'))
      socket.on('data', (d: Buffer) => {
        text += d.toString()
        if (text.startsWith('echo:GET /')) done(true)
      })
      socket.on('close', () => done(false))
    })
  })
}

async function sleep (ms: number): Promise<void> { await new Promise((resolve) => setTimeout(resolve, ms)) }

test('a connection flood at --max-connections: the surplus is refused at once and counted, the agent reports the fill, a retrying client completes once the handshake timeout frees slots', async () => {
  const { node, port, agentPort } = await start(['--workers', '2', '--max-connections', '20', '--handshake-timeout', '4'])
  // The agent tells HAProxy a little less than the node admits (a reserve for its checks).
  assert.match(await agentSays(agentPort), /^ready up 100% maxconn:19\n$/)
  assert.equal(await node.metric('tlsfleet_connections_limit'), 20)

  const started = Date.now()
  const flood: Idle[] = []
  for (let i = 0; i < 40; i++) flood.push(await idle(port))
  await sleep(500)
  const refused = flood.filter((c) => c.closedByServer).length
  const held = flood.length - refused
  assert.ok(held <= 20, `the node holds at most --max-connections: ${held}`)
  assert.ok(refused >= 20, `the surplus is refused: ${refused}`)
  // /metrics is built at most once a second: poll.
  await eventually(async () => await node.metric('tlsfleet_connections_refused_total', { reason: 'max_connections' }) === refused, 3000, `${refused} refusals counted`)
  assert.equal(await node.metric('tlsfleet_connections_active'), held)
  await node.waitForLog((l) => l.msg === 'refusing new connections: this worker holds its share of --max-connections' && l.reason === 'max_connections', 3000)

  // Full of connections, idle event loop: the weight the agent reports falls (one sample a second).
  await eventually(async () => Number(/ (\d+)% /.exec(await agentSays(agentPort))?.[1]) < 100, 3000, 'the agent weight to fall with the fill')

  // A well-behaved client that retries (as HAProxy does) gets in once the stalled connections
  // are cut at the handshake timeout.
  let served = false
  for (let attempt = 0; attempt < 40 && !served; attempt++) {
    served = await request(port, { timeoutMs: 1000 })
    if (!served) await sleep(200)
  }
  assert.ok(served, 'the client completed')
  assert.ok(Date.now() - started < 4000 * 1.1 + 3000, `within the handshake timeout (a sweep may be a tenth late) and a margin: ${Date.now() - started} ms`)
  // Every stalled connection is cut at the handshake timeout, checked by a sweep every tenth of
  // it (sweep-timers.ts). The client may have got in before: through a slot the flood left free
  // (the kernel spreads accepts unevenly over the two workers, so one can hold less than its
  // share), or between two sweeps.
  const cutBy = started + 4000 * 1.1 + 1500
  await eventually(() => flood.every((c) => c.closedByServer), Math.max(0, cutBy - Date.now()) + 100, 'the stalled connections to be cut at the handshake timeout')
  // Refusals are logged once per burst, not per connection.
  assert.equal(node.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('refusing new connections')).length <= 2, true)
})

test('PROXY trust: a header from a peer outside --proxy-from is closed and counted; the per-source cap counts the PROXY header\'s client', async () => {
  const { node, port, backend } = await start(['--workers', '1', '--proxy-protocol-in', 'auto', '--proxy-from', '127.0.0.1', '--proxy-protocol-out', 'v1', '--max-handshakes-per-source', '3', '--handshake-timeout', '10'])
  await node.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('auto: clients may connect with or without a PROXY header; a header is believed only from --proxy-from 127.0.0.1/32'))

  // 127.0.0.2 is not a balancer: its forged header closes the connection.
  assert.equal(await request(port, { localAddress: '127.0.0.2', header: 'PROXY TCP4 203.0.113.66 198.51.100.1 40000 443\r\n' }), false)
  await eventually(async () => await node.metric('tlsfleet_proxy_protocol_errors_total', { reason: 'untrusted_source' }) === 1, 3000, 'the untrusted header counted')
  await node.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('PROXY header from a peer outside --proxy-from') && l.peer === '127.0.0.2')
  // The same peer without a header is a direct client (auto); the balancer's header is believed.
  assert.equal(await request(port, { localAddress: '127.0.0.2' }), true)
  assert.equal(await request(port, { localAddress: '127.0.0.1', header: 'PROXY TCP4 203.0.113.5 198.51.100.1 40001 443\r\n' }), true)
  // (The node's backend probe connects too, and sends nothing.)
  const seen = backend.connections.filter((c) => c.received.length > 0).map((c) => c.proxy?.source?.address)
  assert.deepEqual(seen, ['127.0.0.2', '203.0.113.5'])
  assert.equal(await node.metric('tlsfleet_proxy_protocol_errors_total', { reason: 'untrusted_source' }), 1)

  // Three stalled handshakes from one client behind the balancer take its slots...
  const header = 'PROXY TCP4 203.0.113.9 198.51.100.1 40002 443\r\n'
  const stalled = [await idle(port, { header }), await idle(port, { header }), await idle(port, { header })]
  await sleep(200)
  assert.ok(stalled.every((c) => !c.closedByServer))
  // ...a fourth is refused and counted, while another client behind the same balancer is served.
  assert.equal(await request(port, { header }), false)
  await eventually(async () => await node.metric('tlsfleet_connections_refused_total', { reason: 'per_source' }) === 1, 3000, 'the per-source refusal counted')
  // Logged as what it is (the per-source bound), naming the client behind the balancer.
  const started = await node.waitForLog((l) => l.reason === 'per_source' && typeof l.msg === 'string' && l.msg.startsWith('refusing new connections from a source'), 3000)
  assert.equal(started.address, '203.0.113.9')
  assert.ok(!node.logs.some((l) => l.reason === 'per_source' && String(l.msg).includes('--max-connections')), 'per-source refusals logged as --max-connections ones')
  assert.equal(await request(port, { header: 'PROXY TCP4 203.0.113.10 198.51.100.1 40003 443\r\n' }), true)
  // A slot given back (the client gave up) admits the next one.
  stalled[0]?.socket.destroy()
  await sleep(200)
  assert.equal(await request(port, { header }), true)
  assert.equal(await node.metric('tlsfleet_connections_refused_total', { reason: 'per_source' }), 1)
})

test('one IPv4 client is one source on a [::] listener: its direct connections (::ffff:a.b.c.d) and those a PROXY header names (a.b.c.d) share its --max-handshakes-per-source slots', async () => {
  const { node, port } = await start(['--workers', '1', '--proxy-protocol-in', 'auto', '--proxy-from', '127.0.0.1', '--max-handshakes-per-source', '2', '--handshake-timeout', '10'], '[::]')
  // 127.0.0.2 connects directly over IPv4 (the node sees ::ffff:127.0.0.2), and through the
  // balancer 127.0.0.1 (its header says 127.0.0.2): two stalled handshakes of one client.
  const header = 'PROXY TCP4 127.0.0.2 198.51.100.1 40010 443\r\n'
  const stalled = [await idle(port, { localAddress: '127.0.0.2' }), await idle(port, { localAddress: '127.0.0.1', header })]
  await sleep(200)
  assert.ok(stalled.every((c) => !c.closedByServer))
  // A third, either way, is over its cap.
  assert.equal(await request(port, { localAddress: '127.0.0.1', header }), false)
  assert.equal(await request(port, { localAddress: '127.0.0.2' }), false)
  await eventually(async () => await node.metric('tlsfleet_connections_refused_total', { reason: 'per_source' }) === 2, 3000, 'both refusals counted')
  // Another client behind the balancer is served.
  assert.equal(await request(port, { localAddress: '127.0.0.1', header: 'PROXY TCP4 127.0.0.3 198.51.100.1 40011 443\r\n' }), true)
})

test('a peer outside --proxy-from cannot hold connections meant for the balancer: closed at accept with v1/v2; with auto its slot of --max-handshakes-per-source is taken at accept', async () => {
  const balancerHeader = Buffer.from('0d0a0d0a000d0a515549540a' + '21' + '11' + '000c' + 'cb007105' + 'c6336401' + '9c40' + '01bb', 'hex')
  const v2 = await start(['--workers', '1', '--max-connections', '2', '--proxy-protocol-in', 'v2', '--proxy-from', '127.0.0.1', '--handshake-timeout', '10'])
  // Two connections that send nothing from 127.0.0.2, which no header is believed from: they
  // held the worker's two slots for the handshake timeout, and the balancer was refused.
  const stalled = [await idle(v2.port, { localAddress: '127.0.0.2' }), await idle(v2.port, { localAddress: '127.0.0.2' })]
  await eventually(() => stalled.every((c) => c.closedByServer), 3000, 'the untrusted peer\'s connections closed at once')
  assert.equal(await request(v2.port, { header: balancerHeader }), true)
  assert.equal(await v2.node.metric('tlsfleet_proxy_protocol_errors_total', { reason: 'untrusted_source' }), 2)
  assert.equal(await v2.node.metric('tlsfleet_connections_refused_total', { reason: 'max_connections' }), 0)
  await v2.node.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('outside --proxy-from') && l.peer === '127.0.0.2')

  // auto: 127.0.0.2 is a direct client; its stalled connections (not a byte sent) count against its per-source cap.
  const auto = await start(['--workers', '1', '--proxy-protocol-in', 'auto', '--proxy-from', '127.0.0.1', '--max-handshakes-per-source', '2', '--handshake-timeout', '10'])
  const quiet = [await idle(auto.port, { localAddress: '127.0.0.2' }), await idle(auto.port, { localAddress: '127.0.0.2' })]
  await sleep(200)
  assert.ok(quiet.every((c) => !c.closedByServer))
  assert.equal(await request(auto.port, { localAddress: '127.0.0.2' }), false)
  await eventually(async () => await auto.node.metric('tlsfleet_connections_refused_total', { reason: 'per_source' }) === 1, 3000, 'the per-source refusal counted')
  assert.equal(await request(auto.port, { localAddress: '127.0.0.3' }), true)
  assert.equal(await request(auto.port, { header: balancerHeader }), true)
})

test('a balancer\'s health check (a PROXY v2 LOCAL header, then a reset) is neither a forgery nor a refusal', async () => {
  const { node, port } = await start(['--workers', '1', '--proxy-protocol-in', 'v2', '--proxy-from', '127.0.0.1'])
  // HAProxy's check with send-proxy-v2: the header, and the connection reset at once.
  const local = Buffer.from('0d0a0d0a000d0a515549540a' + '20' + '00' + '0000', 'hex')
  for (let i = 0; i < 20; i++) {
    const socket = net.connect({ host: '127.0.0.1', port })
    socket.on('error', () => {})
    await new Promise<void>((resolve) => { socket.once('connect', resolve) })
    socket.write(local)
    socket.resetAndDestroy()
    await new Promise<void>((resolve) => { socket.once('close', () => resolve()) })
  }
  await eventually(async () => await node.metric('tlsfleet_connections_accepted_total') >= 20, 5000, 'the checks\' connections accepted')
  await sleep(300)
  assert.equal(await node.metric('tlsfleet_proxy_protocol_errors_total', { reason: 'untrusted_source' }), 0, node.diagnosis())
  assert.ok(!node.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('PROXY header from a peer outside --proxy-from')), 'a check was logged as a forged header')
  // Each is a check closed before TLS, also when it was reset before the worker accepted it
  // (its peer then unknown): never a handshake failure.
  await eventually(async () => await node.metric('tlsfleet_connections_closed_before_tls_total', { header: 'local' }) === 20, 5000, `20 checks counted as LOCAL headers closed before TLS; ${node.diagnosis()}`)
  assert.equal(await node.metric('tlsfleet_handshake_failures_total'), 0)
  // And the balancer's real clients are still served.
  assert.equal(await request(port, { header: Buffer.from('0d0a0d0a000d0a515549540a' + '21' + '11' + '000c' + 'cb007105' + 'c6336401' + '9c40' + '01bb', 'hex') }), true)
})

test('file descriptors: the cap derived from the limit refuses (counted) instead of running out; a limit lowered under the node is an EMFILE burst, logged and counted once, and it serves again afterwards', async () => {
  const { node, port } = await start(['prlimit', '--nofile=160:160', '--workers', '1', '--handshake-timeout', '30'])
  const worker = childPids(node.process.pid ?? 0)[0]
  if (worker === undefined) throw new Error('no worker process')
  const limit = await node.metric('tlsfleet_connections_limit')
  // Two descriptors per connection, beyond those the worker holds at start.
  assert.ok(limit > 20 && limit < (160 - 16) / 2, `cap ${limit} from a limit of 160`)

  const flood: Idle[] = []
  for (let i = 0; i < limit + 10; i++) flood.push(await idle(port))
  await sleep(500)
  assert.equal(flood.filter((c) => c.closedByServer).length, 10)
  await eventually(async () => await node.metric('tlsfleet_connections_refused_total', { reason: 'fd_limit' }) === 10, 3000, '10 refusals counted')
  assert.equal(await node.metric('tlsfleet_fd_exhaustions_total'), 0)

  // An operator lowers the worker's limit under what it holds: accept fails with EMFILE, which
  // libuv keeps to itself; the worker's probe sees it.
  const open = fs.readdirSync(`/proc/${worker}/fd`).length
  execFileSync('prlimit', ['--pid', String(worker), `--nofile=${open - 3}:${open - 3}`])
  await node.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('file descriptors exhausted') && l.code === 'EMFILE', 5000)
  await eventually(async () => await node.metric('tlsfleet_fd_exhaustions_total') === 1, 3000, 'the exhaustion counted')
  assert.equal(await request(port, { timeoutMs: 1500 }), false, 'no handshake while exhausted')
  await sleep(1500)
  assert.equal(await node.metric('tlsfleet_fd_exhaustions_total'), 1, 'one burst, counted once')

  // The stalled clients leave: descriptors free up, the cap follows the new limit, it serves.
  for (const c of flood) c.socket.destroy()
  await node.waitForLog((l) => l.msg === 'file descriptors available again: accepting connections', 5000)
  await eventually(async () => await request(port, { timeoutMs: 2000 }), 10_000, 'a client served after the burst')
  await eventually(async () => await node.metric('tlsfleet_connections_limit') < limit, 3000, 'the cap to follow the lowered limit')
  assert.equal(node.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('file descriptors exhausted')).length, 1)
})
