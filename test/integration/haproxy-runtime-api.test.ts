import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { constants as cryptoConstants } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test, type TestContext } from 'node:test'
import tls from 'node:tls'
import { formatAgentReply, type AgentReply } from '../../src/agent/agent-reply.js'
import { HaproxyRuntimeError } from '../../src/errors.js'
import { HaproxyCoordinator } from '../../src/haproxy/coordinator.js'
import { HaproxyRuntimeApi } from '../../src/haproxy/runtime-api.js'
import type { StatRow } from '../../src/haproxy/stats.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { persistenceLines } from '../../src/lab/haproxy-config.js'
import { pollUntil, startHaproxy, TCP_DEFAULTS } from '../helpers/haproxy.js'

// The session-ID persistence rules of the shipped haproxy/haproxy.cfg, so the tests check those.
const STICKINESS = persistenceLines().join('\n  ')

/** A TCP server that accepts and closes: enough for an L4 health check to pass. */
async function listener (t: TestContext): Promise<number> {
  const server = net.createServer((socket) => { socket.on('error', () => {}); socket.destroy() })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => { server.close() })
  return (server.address() as net.AddressInfo).port
}

async function serverRow (api: HaproxyRuntimeApi, backend: string, server: string): Promise<StatRow> {
  const row = (await api.showStat()).find((r) => r.pxname === backend && r.svname === server)
  if (row === undefined) throw new Error(`no stat row for ${backend}/${server}`)
  return row
}

async function rejectsWith (promise: Promise<unknown>, text: string | RegExp): Promise<HaproxyRuntimeError> {
  try {
    await promise
  } catch (err) {
    assert.ok(err instanceof HaproxyRuntimeError, `expected HaproxyRuntimeError, got ${String(err)}`)
    if (typeof text === 'string') assert.equal(err.output.trim(), text)
    else assert.match(err.output, text)
    return err
  }
  assert.fail(`expected the call to fail with ${String(text)}`)
}

test('command round trip over the unix socket, IPv4 and IPv6 TCP sockets', async (t) => {
  const port = await listener(t)
  const h = await startHaproxy(({ ports }) => `
global
  stats socket ipv4@127.0.0.1:${ports[0]} level admin
  stats socket ipv6@[::1]:${ports[1]} level admin
${TCP_DEFAULTS}
backend be
  server s1 127.0.0.1:${port} weight 100
`, { t })
  const info = await h.api.command('show info')
  assert.match(info, /^Name: HAProxy$/m)
  assert.match(info, /^Version: 2\.6\./m)
  assert.match(info, new RegExp(`^Pid: ${h.pid}$`, 'm'))
  assert.ok(!info.endsWith('\n\n'), 'the terminating empty line is stripped')
  for (const target of [`127.0.0.1:${h.ports[0]}`, `[::1]:${h.ports[1]}`, `unix@${h.socketPath}`]) {
    const api = new HaproxyRuntimeApi(target, { timeoutMs: 2000 })
    assert.match(await api.command('show info'), /^Name: HAProxy$/m, target)
  }
  const [state] = await h.api.showServersState('be')
  assert.equal(state?.srv_name, 's1')
  assert.equal(state?.srv_iweight, 100)
  assert.equal(state?.srv_port, port)
  assert.equal(await h.api.command('set server be/s1 weight 50'), '', 'a silent success is an empty string')
})

test('set server state drain / maint / ready shows in show stat and show servers state', async (t) => {
  const port = await listener(t)
  const h = await startHaproxy(`${TCP_DEFAULTS}
backend be
  server s1 127.0.0.1:${port} weight 100 check inter 200ms
  server s2 127.0.0.1:${port} weight 100
`, { t })
  await pollUntil('s1 UP', async () => (await serverRow(h.api, 'be', 's1')).status === 'UP' ? true : undefined)
  assert.equal((await serverRow(h.api, 'be', 's2')).status, 'no check')

  await h.api.setServerState('be', 's1', 'drain')
  assert.equal((await serverRow(h.api, 'be', 's1')).status, 'DRAIN')
  let [s1] = await h.api.showServersState('be')
  assert.deepEqual(s1?.admin_flags, ['FDRAIN'])
  assert.equal(s1?.drain, true)
  assert.equal(s1?.op_state, 'RUNNING')

  await h.api.setServerState('be', 's1', 'maint')
  assert.equal((await serverRow(h.api, 'be', 's1')).status, 'MAINT')
  ;[s1] = await h.api.showServersState('be')
  assert.deepEqual(s1?.admin_flags, ['FMAINT'])
  assert.equal(s1?.maint, true)
  assert.equal(s1?.op_state, 'STOPPED')

  await h.api.setServerState('be', 's1', 'ready')
  await pollUntil('s1 UP again', async () => (await serverRow(h.api, 'be', 's1')).status === 'UP' ? true : undefined)
  ;[s1] = await h.api.showServersState('be')
  assert.deepEqual(s1?.admin_flags, [])

  await h.api.setServerState('be', 's2', 'drain')
  assert.equal((await serverRow(h.api, 'be', 's2')).status, 'DRAIN')
  await h.api.setServerState('be', 's2', 'ready')
  assert.equal((await serverRow(h.api, 'be', 's2')).status, 'no check')
})

test("HAProxy's error texts surface as HaproxyRuntimeError", async (t) => {
  const port = await listener(t)
  const h = await startHaproxy(({ dir }) => `
global
  stats socket ${dir}/user.sock mode 600 level user
${TCP_DEFAULTS}
backend be
  stick-table type ip size 1k
  server s1 127.0.0.1:${port} weight 100
`, { t })
  const { api } = h
  let err = await rejectsWith(api.setServerState('be', 'nosuch', 'drain'), 'No such server.')
  assert.equal(err.command, 'set server be/nosuch state drain')
  await rejectsWith(api.setServerState('nobe', 's1', 'drain'), 'No such backend.')
  await rejectsWith(api.silentCommand('set server s1 state drain'), "Require 'backend/server'.")
  await rejectsWith(api.silentCommand('set server be/s1 state bogus'), "'set server <srv> state' expects 'ready', 'drain' and 'maint'.")
  await rejectsWith(api.silentCommand('set server be/s1 weight 300'), 'Absolute weight can only be between 0 and 256 inclusive.')
  err = await rejectsWith(api.command('frobnicate'), /^Unknown command/)
  assert.match(err.message, /frobnicate/)
  await rejectsWith(api.showServersState('nobe'), "Can't find backend.")
  await rejectsWith(api.showTable('nosuch'), 'No such table')
  await rejectsWith(api.clearTableByServerId('nosuch', 1), 'No such table')
  await rejectsWith(api.clearTableByServerId('be', 1), 'Filter entry #1: Data type not stored in this table')
  const user = new HaproxyRuntimeApi(`${h.dir}/user.sock`, { timeoutMs: 2000 })
  await rejectsWith(user.setServerState('be', 's1', 'maint'), 'Permission denied')
  assert.equal((await serverRow(api, 'be', 's1')).status, 'no check', 'nothing changed')
})

test('injection, bad names, refused connections and timeouts are plain errors', async (t) => {
  const h = await startHaproxy(`${TCP_DEFAULTS}\nbackend be\n  server s1 127.0.0.1:1 weight 100\n`, { t })
  await assert.rejects(h.api.command('show info;show stat'), (err: Error) => !(err instanceof HaproxyRuntimeError) && /newline, ';'/.test(err.message))
  await assert.rejects(h.api.command('show info\nset server be/s1 state maint'), /newline, ';'/)
  await assert.rejects(h.api.command('show info\r'), /newline/)
  await assert.rejects(h.api.command('prompt'), /non-interactive/)
  await assert.rejects(h.api.setServerState('be', 's1 state maint', 'drain'), /invalid haproxy server name/)
  await assert.rejects(h.api.setServerState('be', 's1', 'up' as 'ready'), /invalid server state "up"/)
  await assert.rejects(h.api.clearTableByServerId('be', -1), /non-negative integer/)
  assert.equal((await serverRow(h.api, 'be', 's1')).status, 'no check', 'nothing was sent')

  await assert.rejects(new HaproxyRuntimeApi(`${h.dir}/missing.sock`).command('show info'), /ENOENT/)
  assert.throws(() => new HaproxyRuntimeApi('localhost'), /HOST:PORT/)

  // A peer that accepts and never answers: the command must fail within its timeout.
  const held = new Set<net.Socket>()
  const silent = net.createServer((socket) => { socket.on('error', () => {}); held.add(socket) })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.after(() => { silent.close() })
  const api = new HaproxyRuntimeApi(`127.0.0.1:${(silent.address() as net.AddressInfo).port}`, { timeoutMs: 300 })
  const started = Date.now()
  await assert.rejects(api.command('show info'), /within 300 ms/)
  assert.ok(Date.now() - started < 2000)
  for (const socket of held) socket.destroy()

  // A peer that streams without end (not HAProxy): cut at the reply bound, not at the deadline.
  const block = Buffer.alloc(1024 * 1024, 'x')
  const streaming = net.createServer((socket) => {
    socket.on('error', () => {})
    const pump = (): void => {
      let room = true
      while (room && !socket.destroyed) room = socket.write(block)
    }
    socket.on('drain', pump)
    pump()
  })
  await new Promise<void>((resolve) => streaming.listen(0, '127.0.0.1', resolve))
  t.after(() => { streaming.close() })
  const flooded = new HaproxyRuntimeApi(`127.0.0.1:${(streaming.address() as net.AddressInfo).port}`, { timeoutMs: 3000 })
  const floodStart = Date.now()
  await assert.rejects(flooded.command('show stat'), /the reply to "show stat" exceeds 67108864 bytes: is this HAProxy's stats socket\?/)
  assert.ok(Date.now() - floodStart < 2000, 'cut before the deadline (the reply grew by ~0.7 GB a second until it)')
})

test('HAProxy\'s master CLI (-S) given as the socket: each command fails at once, naming it and the socket to give instead', async (t) => {
  const dir = tempDir()
  const worker = path.join(dir, 'worker.sock')
  const master = path.join(dir, 'master.sock')
  const cfg = path.join(dir, 'haproxy.cfg')
  fs.writeFileSync(cfg, `global\n  stats socket ${worker} mode 600 level admin\n${TCP_DEFAULTS}\nbackend be\n  server s1 127.0.0.1:1 weight 100\n`)
  // Master-worker, as Debian's unit runs it (-Ws ... -S /run/haproxy-master.sock).
  const child = spawn('haproxy', ['-W', '-db', '-S', master, '-f', cfg], { stdio: 'ignore' })
  t.after(async () => {
    child.kill('SIGTERM')
    await new Promise((resolve) => { if (child.exitCode !== null || child.signalCode !== null) resolve(undefined); else child.once('exit', resolve) })
    fs.rmSync(dir, { recursive: true, force: true })
  })
  const workerApi = new HaproxyRuntimeApi(worker, { timeoutMs: 2000 })
  await pollUntil('the worker\'s stats socket', async () => (await workerApi.showInfo()).pid)
  // Listening, not only there: the socket file exists from bind(), before listen() (a connect
  // in between is refused, ECONNREFUSED: seen once in a loaded full run).
  await pollUntil('the master CLI', async () => await new Promise<true | undefined>((resolve) => {
    const probe = net.connect(master, () => { probe.destroy(); resolve(true) })
    probe.on('error', () => { resolve(undefined) })
  }))

  const masterApi = new HaproxyRuntimeApi(master, { timeoutMs: 3000 })
  const started = Date.now()
  for (const call of [async () => await masterApi.showInfo(), async () => await masterApi.showStat(), async () => await masterApi.setServerState('be', 's1', 'drain')]) {
    await assert.rejects(call(), (err: Error) => err instanceof HaproxyRuntimeError && err.message.includes(`${master} is HAProxy's master CLI (-S), which runs no such command itself; give the stats socket of the worker instead`))
  }
  assert.ok(Date.now() - started < 2000, `answered at once, not at the deadline (${Date.now() - started} ms for three commands)`)
  assert.equal((await serverRow(workerApi, 'be', 's1')).status, 'no check', 'the drain never reached HAProxy')
})

interface StickyFarm {
  h: Awaited<ReturnType<typeof startHaproxy>>
  /** One TLS connection through HAProxy (TLS 1.2 unless told): which server answered, and the session. */
  connect: (opts?: tls.ConnectionOptions) => Promise<{ server: string; session: Buffer | undefined }>
}

/** HAProxy with the shipped persistence rules (table size `size`) in front of two TLS servers, s1 and s2. */
async function stickyFarm (t: TestContext, size = '30k'): Promise<StickyFarm> {
  const pem = fs.readFileSync(makeCertificate(tempDir(), 'backend', ['localhost']))
  const ports: number[] = []
  for (const name of ['s1', 's2']) {
    // No tickets: a TLS 1.2 server then hands out session IDs, which is what the table keys on.
    const server = tls.createServer({ key: pem, cert: pem, secureOptions: cryptoConstants.SSL_OP_NO_TICKET }, (socket) => {
      socket.on('error', () => {})
      socket.end(name)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.after(() => { server.close() })
    ports.push((server.address() as net.AddressInfo).port)
  }
  const h = await startHaproxy(({ ports: [front] }) => `${TCP_DEFAULTS}
frontend fe
  bind 127.0.0.1:${front}
  default_backend be
backend be
  balance roundrobin
  ${STICKINESS.replace(' size 30k ', ` size ${size} `)}
  server s1 127.0.0.1:${ports[0]}
  server s2 127.0.0.1:${ports[1]}
`, { t })
  const front = h.ports[0] ?? 0
  const connect = async (opts: tls.ConnectionOptions = { maxVersion: 'TLSv1.2' }): Promise<{ server: string; session: Buffer | undefined }> => await new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: front, servername: 'localhost', rejectUnauthorized: false, ...opts })
    let data = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('TLS client timed out')) }, 5000)
    socket.on('data', (chunk: Buffer) => { data += chunk.toString() })
    socket.on('error', (err) => { clearTimeout(timer); reject(err) })
    socket.on('end', () => { clearTimeout(timer); resolve({ server: data, session: socket.getSession() }) })
  })
  return { h, connect }
}

test('SSL session-ID stickiness fills a binary table; clear table by server id empties it', async (t) => {
  const { h, connect } = await stickyFarm(t)
  const first = await connect()
  const second = await connect()
  assert.deepEqual([first.server, second.server].sort(), ['s1', 's2'], 'round robin without a session ID')
  // With the session ID of the first connection, every reconnect sticks to its server.
  for (let i = 0; i < 3; i++) assert.equal((await connect({ maxVersion: 'TLSv1.2', session: first.session })).server, first.server)

  const table = await h.api.showTable('be')
  assert.match(table, /^# table: be, type: binary, size:30720, used:\d+/)
  assert.match(table, /key=[0-9A-F]{64} .*server_id=1 server_key=s1/)
  assert.match(table, /server_id=2 server_key=s2/)

  // 2.6 cannot insert binary keys from the CLI; only traffic fills such a table.
  await rejectsWith(h.api.silentCommand(`set table be key ${'00'.repeat(32)} data.server_id 1`),
    'Inserting keys into tables of type other than ip, ipv6, string and integer is not supported')

  await h.api.clearTableByServerId('be', 1)
  const after = await h.api.showTable('be')
  assert.doesNotMatch(after, /server_id=1 /)
  assert.match(after, /server_id=2 server_key=s2/)
  await h.api.clearTableByServerId('be', 2)
  assert.match(await h.api.showTable('be'), /used:0\n$/)
})

test('TLS 1.3 connections leave no entry: a TLS 1.2 client keeps its node after more TLS 1.3 clients than the table holds', async (t) => {
  const { h, connect } = await stickyFarm(t, '4')
  const used = async (): Promise<number> => Number(/used:(\d+)/.exec(await h.api.showTable('be'))?.[1])
  const first = await connect()
  assert.equal(await used(), 1, 'the TLS 1.2 ServerHello\'s session ID is learnt')
  // Each echoes the client's random legacy session ID; learnt, the 4-entry table would drop the TLS 1.2 one.
  const servers = new Set<string>()
  for (let i = 0; i < 8; i++) servers.add((await connect({ minVersion: 'TLSv1.3' })).server)
  assert.deepEqual([...servers].sort(), ['s1', 's2'], 'TLS 1.3 clients are balanced')
  assert.equal(await used(), 1, 'no TLS 1.3 ID learnt')
  for (let i = 0; i < 3; i++) assert.equal((await connect({ maxVersion: 'TLSv1.2', session: first.session })).server, first.server)
  const fresh = [await connect(), await connect()].map((c) => c.server).sort()
  assert.deepEqual(fresh, ['s1', 's2'], 'new TLS 1.2 clients (no session ID) are still balanced')
})

test('agent-check replies drive weight, drain, maint and down', async (t) => {
  let reply: AgentReply = { admin: 'ready', health: 'up', weightPercent: 100 }
  const requests: string[] = []
  const agent = net.createServer((socket) => {
    socket.on('error', () => {}) // HAProxy resets the connection once it has read the line
    socket.once('data', (chunk: Buffer) => { if (requests.length < 10) requests.push(chunk.toString()) })
    socket.end(formatAgentReply(reply))
  })
  await new Promise<void>((resolve) => agent.listen(0, '127.0.0.1', resolve))
  t.after(() => { agent.close() })
  const agentPort = (agent.address() as net.AddressInfo).port
  const port = await listener(t)
  const h = await startHaproxy(`${TCP_DEFAULTS}
backend tlsfleet
  server node1 127.0.0.1:${port} weight 100 check inter 200ms agent-check agent-port ${agentPort} agent-inter 200ms agent-send "hello\\n"
`, { t })
  const until = async (what: string, ok: (row: StatRow) => boolean): Promise<StatRow> =>
    await pollUntil(what, async () => {
      const row = await serverRow(h.api, 'tlsfleet', 'node1')
      return ok(row) ? row : undefined
    })

  await until('UP 100', (r) => r.status === 'UP' && r.weight === 100)
  reply = { admin: 'ready', health: 'up', weightPercent: 80 }
  const weighted = await until('weight 80', (r) => r.weight === 80)
  assert.equal(weighted.status, 'UP')
  assert.equal(weighted.last_agt, 'via agent : up')

  reply = { admin: 'drain', health: 'up', weightPercent: 100 }
  await until('DRAIN (agent)', (r) => r.status === 'DRAIN (agent)' && r.weight === 100)
  assert.deepEqual((await h.api.showServersState('tlsfleet'))[0]?.admin_flags, ['FDRAIN'])

  reply = { admin: 'maint', health: 'up', weightPercent: 100 }
  await until('MAINT', (r) => r.status === 'MAINT')
  assert.deepEqual((await h.api.showServersState('tlsfleet'))[0]?.admin_flags, ['FMAINT'])

  reply = { admin: 'ready', health: 'down', weightPercent: 100, reason: 'no workers, restarting' }
  const down = await until('DOWN (agent)', (r) => r.status === 'DOWN (agent)')
  assert.equal(down.agent_status, 'L7STS')
  await until('reason shown', (r) => r.last_agt === 'via agent : down (no workers, restarting)')
  assert.equal((await h.api.showServersState('tlsfleet'))[0]?.op_state, 'STOPPED')

  reply = { admin: 'ready', health: 'up', weightPercent: 60 }
  await until('UP 60 again', (r) => r.status === 'UP' && r.weight === 60)
  assert.equal(requests[0], 'hello\n', 'agent-send arrives verbatim')
})

test('the coordinator: state changes reach HAProxy in the order asked, and one read of its view serves every caller for a second, read again after a change', async (t) => {
  const port = await listener(t)
  const h = await startHaproxy(`
${TCP_DEFAULTS}
backend be
  stick-table type binary len 32 size 1k expire 30m store server_id
  server s1 127.0.0.1:${port} weight 100
`, { t })
  const coordinator = new HaproxyCoordinator({ socket: h.socketPath, server: 'be/s1' })
  let reads = 0
  const showStat = coordinator.api.showStat.bind(coordinator.api)
  coordinator.api.showStat = async () => { reads++; return await showStat() }

  // Asked at once, in this order: HAProxy ends where the last one put it.
  const asked = ['drain', 'maint', 'ready', 'drain', 'maint', 'drain'] as const
  const outcomes = await Promise.all(asked.map(async (state) => await coordinator.applyState(state)))
  assert.ok(outcomes.flat().every((o) => o.ok), JSON.stringify(outcomes))
  assert.equal((await serverRow(h.api, 'be', 's1')).status, 'DRAIN')

  reads = 0
  const views = await Promise.all(Array.from({ length: 10 }, async () => await coordinator.view()))
  assert.equal(reads, 1, 'ten callers at once: one show stat')
  assert.ok(views.every((v) => v.status === 'DRAIN' && v.reachable))
  await coordinator.view()
  assert.equal(reads, 1, 'within the second: the same read')
  await coordinator.applyState('ready')
  const after = await coordinator.view()
  assert.equal(after.status, 'no check', 'read again after the change (ready, and no health check declared)')
  assert.equal(reads, 2)
  assert.equal((await coordinator.view(Date.now() + 1500)).status, 'no check')
  assert.equal(reads, 3, 'older than a second: read again')
})
