import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, test } from 'node:test'
import type { CacheBody } from '../../src/admin/schemas.js'
import { runCli, serverRow } from '../helpers/agent.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { pollUntil, startHaproxy, TCP_DEFAULTS, type RunningHaproxy } from '../helpers/haproxy.js'
import { childPids, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient, type SClientResult } from '../helpers/openssl.js'
import { persistenceLines } from '../../src/lab/haproxy-config.js'
import { freePorts } from '../helpers/ports.js'

// The session-ID persistence rules of the shipped haproxy/haproxy.cfg, so the tests check those.
const STICKINESS = persistenceLines().join('\n  ')

/**
 * Two real nodes with farm sync behind a real HAProxy doing TLS 1.2 session-ID persistence
 * (the stick-table rules of haproxy/haproxy.cfg): a resuming client lands on the node that
 * holds its session; when its node drains with --move-clients or dies, it lands on the other
 * node and still resumes, because the farm shares the session cache.
 */

interface Member { name: 'n1' | 'n2'; node: RunningNode }

let haproxy: RunningHaproxy
let dir: string
let frontPort: number
const members: Member[] = []

// -no_ticket: the client offers no ticket, so only the session ID (what HAProxy sticks on) resumes.
const client = async (opts: { sessOut?: string; sessIn?: string }): Promise<SClientResult> =>
  await sClient({ port: frontPort, tls: '1.2', extra: ['-no_ticket'], ...opts })

type Counts = Record<'n1' | 'n2', { full: number; resumed: number }>

async function handshakes (): Promise<Counts> {
  const counts = {} as Counts
  for (const m of members) {
    if (m.node.process.exitCode !== null || m.node.process.signalCode !== null) { counts[m.name] = { full: 0, resumed: 0 }; continue }
    counts[m.name] = {
      full: await m.node.metric('tlsfleet_handshakes_total', { result: 'full', version: 'TLSv1.2' }),
      resumed: await m.node.metric('tlsfleet_handshakes_total', { result: 'resumed', version: 'TLSv1.2' })
    }
  }
  return counts
}

/** Run one client connection and tell which node did which kind of handshake. */
async function landing (run: () => Promise<SClientResult>): Promise<{ result: SClientResult; node: 'n1' | 'n2'; kind: 'full' | 'resumed' }> {
  const before = await handshakes()
  const result = await run()
  const after = await pollUntil('the handshake counted', async () => {
    const now = await handshakes()
    const total = (c: Counts): number => c.n1.full + c.n1.resumed + c.n2.full + c.n2.resumed
    return total(now) > total(before) ? now : undefined
  }, 3000)
  for (const name of ['n1', 'n2'] as const) {
    if (after[name].full > before[name].full) return { result, node: name, kind: 'full' }
    if (after[name].resumed > before[name].resumed) return { result, node: name, kind: 'resumed' }
  }
  throw new Error('no node counted the handshake')
}

const other = (name: 'n1' | 'n2'): 'n1' | 'n2' => name === 'n1' ? 'n2' : 'n1'
const member = (name: 'n1' | 'n2'): Member => members.find((m) => m.name === name) as Member

/** Wait until `name` holds at least `entries` sessions in L2 (farm sync delivered them). */
async function synced (name: 'n1' | 'n2', entries: number): Promise<void> {
  await pollUntil(`${name} L2 has ${entries} sessions`, async () => {
    const cache = await (await fetch(`${member(name).node.adminUrl}/v1/cache`)).json() as CacheBody
    return cache.l2.entries >= entries ? true : undefined
  }, 5000)
}

async function l2Entries (name: 'n1' | 'n2'): Promise<number> {
  return ((await (await fetch(`${member(name).node.adminUrl}/v1/cache`)).json()) as CacheBody).l2.entries
}

/**
 * After a new session on `home`: wait until home's L2 holds it (the worker's New crosses IPC
 * asynchronously), then until `away` has as many sessions (the farm sync delivered it).
 */
async function sessionShared (home: 'n1' | 'n2', before: number): Promise<void> {
  await synced(home, before + 1)
  await synced(other(home), await l2Entries(home))
}

before(async () => {
  dir = tempDir()
  const cert = makeCertificate(dir, 'farm', ['localhost'])
  const secret = writeFarmSecret(dir)
  let ports: number[] = []
  haproxy = await startHaproxy((ctx) => {
    ports = ctx.ports
    const [front, tls1, agent1, tls2, agent2] = ports as [number, number, number, number, number]
    frontPort = front
    return `${TCP_DEFAULTS}
frontend fe
  bind 127.0.0.1:${front}
  default_backend be

backend be
  balance roundrobin
  ${STICKINESS}
  default-server weight 100 send-proxy-v2 check inter 300 fall 1 rise 1 agent-check agent-inter 300 agent-send "hello\\n"
  server n1 127.0.0.1:${tls1} agent-port ${agent1}
  server n2 127.0.0.1:${tls2} agent-port ${agent2}
`
  }, { ports: 5 })
  const [sync1, sync2, admin1, admin2] = await freePorts(4) as [number, number, number, number]
  const start = async (name: 'n1' | 'n2', tls: number, agent: number, sync: number, peer: number, admin: number): Promise<void> => {
    const node = await startNode([
      '--workers', '1', '--listen', `127.0.0.1:${tls}`, '--proxy-protocol-in', 'v2', '--cert', cert, '--node-id', name,
      '--agent-listen', `127.0.0.1:${agent}`, '--haproxy-socket', haproxy.socketPath, '--haproxy-server', `be/${name}`,
      '--sync-listen', `127.0.0.1:${sync}`, '--sync-peer', `127.0.0.1:${peer}`, '--sync-secret-file', secret,
      '--warm-join-timeout', '0.5'
    ], { adminPort: admin })
    members.push({ name, node })
  }
  await Promise.all([
    start('n1', ports[1] as number, ports[2] as number, sync1, sync2, admin1),
    start('n2', ports[3] as number, ports[4] as number, sync2, sync1, admin2)
  ])
  members.sort((a, b) => a.name.localeCompare(b.name))
  await pollUntil('both servers UP', async () => {
    const rows = await Promise.all([serverRow(haproxy.api, 'be', 'n1'), serverRow(haproxy.api, 'be', 'n2')])
    return rows.every((r) => r.status === 'UP') ? true : undefined
  }, 10_000)
})

after(async () => {
  await Promise.all(members.map(async (m) => await m.node.stop()))
  await haproxy?.stop()
})

test('persistence: a TLS 1.2 client that resumes lands on the node holding its session, Reused', async () => {
  // New clients are balanced over both nodes (round robin), so staying put below is the table's doing.
  const spread = new Set<string>()
  for (let i = 0; i < 4; i++) spread.add((await landing(async () => await client({}))).node)
  assert.equal(spread.size, 2, 'new clients were not balanced over both nodes')

  const sess = path.join(dir, 'persist.pem')
  const first = await landing(async () => await client({ sessOut: sess }))
  assert.equal(first.result.protocol, 'TLSv1.2', first.result.output)
  assert.equal(first.kind, 'full')
  for (let i = 0; i < 6; i++) {
    const again = await landing(async () => await client({ sessIn: sess }))
    assert.equal(again.result.reused, true, `resumption ${i + 1}:\n${again.result.output}`)
    assert.equal(again.node, first.node, `resumption ${i + 1} left the node holding the session`)
    assert.equal(again.kind, 'resumed')
  }
  const sid = (await serverRow(haproxy.api, 'be', first.node)).sid
  assert.match(await haproxy.api.showTable('be'), new RegExp(`server_id=${String(sid)}\\b`))
})

test('drain keeps persistent clients; drain --move-clients sends them to the other node, where they resume', async () => {
  const sess = path.join(dir, 'drain.pem')
  const before = { n1: await l2Entries('n1'), n2: await l2Entries('n2') }
  const first = await landing(async () => await client({ sessOut: sess }))
  const home = first.node
  const away = other(home)
  await sessionShared(home, before[home])

  const drain = await runCli(['drain', '--admin', member(home).node.adminUrl])
  assert.equal(drain.code, 0, drain.stdout + drain.stderr)
  assert.match((await serverRow(haproxy.api, 'be', home)).status, /^DRAIN/)
  const kept = await landing(async () => await client({ sessIn: sess }))
  assert.equal(kept.node, home, 'drain alone must keep persistent clients on their node')
  assert.equal(kept.result.reused, true, kept.result.output)

  const move = await runCli(['drain', '--move-clients', '--admin', member(home).node.adminUrl])
  assert.equal(move.code, 0, move.stdout + move.stderr)
  assert.match(move.stdout, /haproxy: clear table be data\.server_id eq \d+: ok/)
  for (let i = 0; i < 3; i++) {
    const moved = await landing(async () => await client({ sessIn: sess }))
    assert.equal(moved.node, away, `connection ${i + 1} after --move-clients still went to the drained node`)
    assert.equal(moved.result.reused, true, `moved client did not resume on the other node:\n${moved.result.output}`)
    assert.equal(moved.kind, 'resumed')
  }

  const ready = await runCli(['ready', '--admin', member(home).node.adminUrl])
  assert.equal(ready.code, 0, ready.stdout + ready.stderr)
  await pollUntil(`${home} UP again`, async () => /^UP/.test((await serverRow(haproxy.api, 'be', home)).status) ? true : undefined)
})

test('failover: kill the node holding a client\'s session; the client resumes on the other node', async () => {
  const sess = path.join(dir, 'failover.pem')
  const before = { n1: await l2Entries('n1'), n2: await l2Entries('n2') }
  const first = await landing(async () => await client({ sessOut: sess }))
  assert.equal(first.kind, 'full')
  const home = first.node
  const away = other(home)
  await sessionShared(home, before[home])

  const victim = member(home).node
  const workers = childPids(victim.process.pid as number)
  const exited = new Promise((resolve) => victim.process.once('exit', resolve))
  victim.process.kill('SIGKILL')
  for (const pid of workers) { try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ } }
  await exited
  await pollUntil(`${home} DOWN in HAProxy`, async () => /^DOWN/.test((await serverRow(haproxy.api, 'be', home)).status) ? true : undefined)

  const again = await landing(async () => await client({ sessIn: sess }))
  assert.equal(again.node, away)
  assert.equal(again.result.reused, true, `the client did a full handshake on the surviving node:\n${again.result.output}`)
  assert.equal(again.kind, 'resumed')
})
