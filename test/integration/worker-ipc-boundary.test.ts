import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { resumesEventually, sClient, startFarm } from '../helpers/farm.js'
import { childPids, eventually } from '../helpers/node-process.js'
import { tempDir } from '../helpers/certs.js'

// Two nodes in a farm, two workers each. A worker of node 1 is made to send its primary crafted
// messages, as a worker with a bug, or in an attacker's hands, could (test/helpers/ipc-inject.ts):
// the primary holds the farm secret and seals for the peers what its workers give it.
const INJECT = fileURLToPath(new URL('../helpers/ipc-inject.js', import.meta.url))
const HOSTS = ['127.0.0.1', '127.0.0.2']
const dir = tempDir('tlsfleet-ipc-')
const moduleFile = path.join(dir, 'inject.mjs')
let farm: Awaited<ReturnType<typeof startFarm>>

before(async () => {
  farm = await startFarm(HOSTS, {
    dir,
    workers: 2,
    env: { NODE_OPTIONS: `--import ${INJECT}`, TLSFLEET_TEST_IPC_INJECT: moduleFile },
    // Gets that missed wait (held in the primary) long enough for a burst to pile them up.
    extra: ['--cache-miss-wait', '1000', '--cache-get-timeout', '2000'],
    sync: (i, ports) => ['--sync-listen', `${HOSTS[i] as string}:${ports[i] as number}`, '--sync-peer', `${HOSTS[1 - i] as string}:${ports[1 - i] as number}`]
  })
})

after(async () => { await farm?.stop() })

/** Make one worker of node 1 run `body` (the text of an async function of `send`): returns its pid. */
function inject (body: string, worker = 0): number {
  fs.writeFileSync(moduleFile, `export default async (send) => {\n${body}\n}\n`)
  const pid = childPids(farm.nodes[0]?.node.process.pid as number)[worker]
  assert.ok(pid !== undefined, 'a worker of node 1')
  process.kill(pid, 'SIGUSR2')
  return pid
}

const refused = async (reason: string): Promise<number> => await (farm.nodes[0]?.node.metric('tlsfleet_worker_messages_refused_total', { reason }) ?? 0)

test('malformed messages from a worker are refused and counted; the primary serves on and its peers get nothing', async () => {
  const [n1, n2] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0]]
  const explained = (err: Error): never => { throw new Error(`${err.message}; ${n1.node.diagnosis()}`) }
  const sentBefore = await n1.node.metric('tlsfleet_sync_packets_total', { direction: 'out', result: 'sent' })
  const primaryFds = (): number => fs.readdirSync(`/proc/${n1.node.process.pid as number}/fd`).length
  const fdsBefore = primaryFds()
  const pid = inject(`
    const now = Math.floor(Date.now() / 1000)
    const id = Buffer.alloc(32, 0xab)
    // Each of these threw in the primary's event loop: the node stopped.
    await send({ t: 'session-new', id: 5, der: Buffer.from('x'), createdAt: now })
    await send({ t: 'session-get', req: 1 })
    await send({ t: 'session-batch', updates: 5 })
    await send({ t: 'session-new', id, der: 'hello', createdAt: now })
    // Stored in L2, and all but the long ID sealed for the peer: no session, dated ten years ahead.
    await send({ t: 'session-new', id, der: Buffer.from('not a session at all'), createdAt: now })
    await send({ t: 'session-new', id: Buffer.alloc(1000, 1), der: Buffer.from('x'), createdAt: now })
    await send({ t: 'session-new', id: Buffer.alloc(32, 0xcd), der: Buffer.from('x'), createdAt: now + 10 * 365 * 86400 })
    await send({ t: 'report', req: 0, pid: 1, metrics: [{ name: 'x', help: '', type: 'counter', values: 5 }], l1: {}, eventLoopUtilization: NaN, activeConnections: -1, connectionLimit: 0, handshakes: {} })
    await send({ t: 'ready' })
    // Each was an error line in the node's log.
    for (let i = 0; i < 50; i++) await send({ t: 'listen-failed', address: 'x', code: 'EADDRINUSE', message: 'x'.repeat(100000) })
    await send({ t: 'no-such-message' })
    // Node's own cluster protocol, beneath the node's check: its handler threw on this one.
    await send({ cmd: 'NODE_CLUSTER', act: 'queryServer', seq: 1 })
    // Descriptors riding along messages that carry none: each stayed open in the primary.
    const net = await import('node:net')
    for (let i = 0; i < 200; i++) {
      const server = net.createServer()
      await new Promise((resolve) => server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, resolve))
      await send({ t: 'session-del', id }, server)
      server.close()
    }
    // Gets for sessions nobody has, held --cache-miss-wait each: a worker in a loop.
    for (let i = 0; i < 1500; i++) send({ t: 'session-get', req: 1e6 + i, id: Buffer.alloc(32, i & 0xff) })
  `)
  await eventually(async () => await refused('too_many_gets') > 0, 10_000, 'the Gets past the bound refused').catch(async (err: Error) => { throw new Error(`${err.message}: ${JSON.stringify(await Promise.all(['session', 'malformed', 'report', 'out_of_turn'].map(refused)))}`) })
  assert.equal(await refused('session'), 7)
  assert.equal(await refused('report'), 1)
  assert.equal(await refused('out_of_turn'), 51)
  assert.equal(n1.node.logs.filter((l) => l.msg === 'worker cannot listen').length, 0, 'a listening worker\'s bind failure is no bind failure')
  assert.equal(await refused('malformed'), 202)
  assert.ok(primaryFds() < fdsBefore + 20, `the primary holds ${primaryFds() - fdsBefore} more descriptors`)
  const logged = n1.node.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('a worker sent the primary a message it cannot use'))
  assert.equal(logged.length, 1, 'logged once for the worker, then only counted')
  assert.equal(logged[0]?.worker, pid)
  assert.equal(logged[0]?.problem, 'new: the session ID is not bytes')

  assert.equal(n1.node.process.exitCode, null, n1.node.diagnosis())
  assert.equal(await n1.node.metric('tlsfleet_session_cache_entries'), 0, 'nothing of it in L2')
  assert.equal(await n1.node.metric('tlsfleet_sync_packets_total', { direction: 'out', result: 'sent' }), sentBefore, 'nothing of it sealed for the peer')
  assert.equal(await n2.node.metric('tlsfleet_session_cache_entries'), 0)
  const state = await fetch(`${n1.node.adminUrl}/v1/state`)
  assert.equal(state.status, 200)
  assert.equal(await n1.node.metric('tlsfleet_workers', { state: 'listening' }), 2)

  // The farm works on: a real session made on node 1 (a New that passes) resumes on node 2.
  const sess = path.join(dir, 'after.pem')
  assert.equal((await sClient({ host: n1.host, port: n1.port, tls: '1.2', sessOut: sess, extra: ['-no_ticket'] })).reused, false)
  const again = await resumesEventually(async () => await sClient({ host: n2.host, port: n2.port, tls: '1.2', sessIn: sess, extra: ['-no_ticket'] }))
  assert.equal(again.reused, true, again.output)
  assert.equal(await refused('session'), 7, 'a worker\'s real session is never refused')
})

test('a crashing worker\'s last report with counts that are not counts leaves the node\'s totals and pages whole', async () => {
  const [n1] = farm.nodes as [typeof farm.nodes[0]]
  const explained = (err: Error): never => { throw new Error(`${err.message}; ${n1.node.diagnosis()}`) }
  const before = await refused('report')
  const pid = inject(`
    await send({ t: 'report', req: 0, final: true, pid: process.pid, metrics: [], l1: { entries: 0, hits: 0, misses: 0, bytes: 0 }, eventLoopUtilization: 0, activeConnections: 0, connectionLimit: 0, handshakes: { full: 1e308, resumed: NaN } })
    process.exit(1)
  `, 1)
  await n1.node.waitForLog((l) => l.msg === 'worker died; replacing it' && l.worker === pid, 10_000).catch(explained)
  await eventually(async () => await n1.node.metric('tlsfleet_workers', { state: 'listening' }) === 2, 15_000, 'a replacement listening').catch(explained)
  // A NaN kept in the retired totals made /v1/state answer 500 until the node was restarted.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  const state = await fetch(`${n1.node.adminUrl}/v1/state`)
  const text = await state.text()
  assert.equal(state.status, 200, text)
  const body = JSON.parse(text) as { handshakes: { full: number; resumed: number } }
  assert.ok(Number.isFinite(body.handshakes.full) && body.handshakes.full < 1e6, JSON.stringify(body.handshakes))
  assert.equal((await fetch(`${n1.node.adminUrl}/metrics`)).status, 200)
  assert.equal(await refused('report'), before + 1)
})

test('a worker in a Del loop reaches the peer at its allowance only: the rest is dropped and counted', async () => {
  const [n1, n2] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0]]
  const explained = (err: Error): never => { throw new Error(`${err.message}; ${n1.node.diagnosis()}`) }
  const accepted = async (): Promise<number> => await n2.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' })
  const acceptedBefore = await accepted()
  const droppedBefore = await refused('too_many_dels')
  const malformedBefore = await refused('malformed')
  const startedAt = Date.now()
  inject(`
    for (let i = 0; i < 20000; i++) {
      const id = Buffer.alloc(32)
      id.writeUInt32BE(i)
      send({ t: 'session-del', id })
      if (i % 500 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    await send({ t: 'no-such-message' })
  `)
  // The last message counted: every Del before it has been judged.
  await eventually(async () => await refused('malformed') > malformedBefore, 20_000, 'the flood read').catch(explained)
  const seconds = (Date.now() - startedAt) / 1000
  const dropped = await refused('too_many_dels') - droppedBefore
  await new Promise((resolve) => setTimeout(resolve, 500))
  const reached = await accepted() - acceptedBefore
  // Without the allowance all 20,000 were sealed for the peer, and its workers' event loops read 1.
  const applied = 20_000 - dropped
  assert.ok(applied <= 1000 + 1000 * seconds + 10, `${applied} Dels applied in ${seconds} s`)
  assert.ok(reached > 0 && reached <= applied, `${reached} Dels reached the peer in ${seconds} s, ${applied} applied`)
  assert.equal(n1.node.process.exitCode, null)
})
