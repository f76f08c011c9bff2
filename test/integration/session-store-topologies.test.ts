import assert from 'node:assert/strict'
import path from 'node:path'
import { after, test } from 'node:test'
import { tempDir } from '../helpers/certs.js'
import { resumesEventually, sClient, startFarm, type FarmNode } from '../helpers/farm.js'
import { eventually } from '../helpers/node-process.js'
import { redisCli, startCluster, startSentinelSet } from '../helpers/redis-topologies.js'

// The store's other deployments, with real redis-server processes: a Sentinel-watched master
// and replica (and a failover), and a three-master Cluster. Two nodes each, no farm sync: a
// session made on node 1 reaches node 2 through the store only.

const LOOKUP_TIMEOUT_MS = 10
const tls12 = { tls: '1.2' as const, extra: ['-no_ticket'] }
const stops: Array<() => Promise<void>> = []
after(async () => { for (const stop of stops.reverse()) await stop() })

function sessionKey (output: string): string {
  const id = /Session-ID: ([0-9A-F]{64})/.exec(output)?.[1]
  assert.ok(id !== undefined, `no session ID in:\n${output}`)
  return `tlsfleet:session:${id.toLowerCase()}`
}

async function twoNodes (store: string): Promise<[FarmNode, FarmNode, string]> {
  const farm = await startFarm(['127.0.0.1', '127.0.0.2'], { startTimeoutMs: 60_000, sync: () => ['--session-store', store, '--session-store-timeout', String(LOOKUP_TIMEOUT_MS)] })
  stops.push(farm.stop)
  const [n1, n2] = farm.nodes as [FarmNode, FarmNode]
  return [n1, n2, farm.dir]
}

/** A new session on `from`, resumed on `to` through the store; the session's store key. */
async function madeAndResumed (from: FarmNode, to: FarmNode, file: string): Promise<{ key: string; resumed: boolean; output: string }> {
  const made = await sClient({ host: from.host, port: from.port, sessOut: file, ...tls12 })
  assert.equal(made.reused, false)
  const again = await resumesEventually(async () => await sClient({ host: to.host, port: to.port, sessIn: file, ...tls12 }))
  return { key: sessionKey(made.output), resumed: again.reused, output: again.output }
}

test('Sentinel: sessions go through the master Sentinel names, and after a failover through the promoted replica, even while the old master still answers as one', async () => {
  const dir = tempDir()
  // The old master cannot be demoted, as when the Sentinels cannot reach it but the nodes can:
  // only the Sentinels' +switch-master tells the nodes to move (otherwise they would go on
  // writing there, and what they wrote would be lost when it rejoins as a replica).
  const set = await startSentinelSet(dir, 'farm', { primaryArgs: ['--rename-command', 'REPLICAOF', '', '--rename-command', 'SLAVEOF', ''] })
  stops.push(set.stop)
  const [n1, n2] = await twoNodes(set.url)
  const replicaAddress = `${set.replica.host}:${set.replica.port}`

  const before = await madeAndResumed(n1, n2, path.join(dir, 'before.pem'))
  assert.equal(before.resumed, true, `not resumed through the Sentinel's master:\n${before.output}`)
  assert.equal(redisCli(set.primary.host, set.primary.port, ['EXISTS', before.key]), '1', 'written to the master')
  assert.ok(await n2.node.metric('tlsfleet_session_store_lookups_total', { result: 'hit' }) >= 1)

  redisCli(set.primary.host, set.sentinelPort, ['SENTINEL', 'FAILOVER', 'farm'])
  await eventually(() => set.masterAddress() === replicaAddress, 20_000, 'the replica promoted')
  assert.equal(redisCli(set.primary.host, set.primary.port, ['ROLE']).split('\n')[0], 'master', 'the old master was not demoted')
  // The nodes' clients heard +switch-master and asked the Sentinel again: within seconds a new
  // session is written to, and read from, the promoted replica.
  let after: Awaited<ReturnType<typeof madeAndResumed>> | undefined
  const deadline = Date.now() + 20_000
  for (let i = 0; Date.now() < deadline; i++) {
    after = await madeAndResumed(n1, n2, path.join(dir, `after-${i}.pem`))
    if (after.resumed && redisCli(set.replica.host, set.replica.port, ['EXISTS', after.key]) === '1') break
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  assert.ok(after?.resumed === true, `no session resumed through the store after the failover:\n${after?.output ?? ''}`)
  assert.equal(redisCli(set.replica.host, set.replica.port, ['ROLE']).split('\n')[0], 'master')
  assert.equal(redisCli(set.replica.host, set.replica.port, ['EXISTS', after.key]), '1', 'written to the promoted replica')
  // A session written before the failover was replicated: a node that never saw it resumes it.
  assert.equal(redisCli(set.replica.host, set.replica.port, ['EXISTS', before.key]), '1', 'replicated before the failover')
})

test('Cluster: sessions spread over the masters by slot, and each resumes on the other node', async () => {
  const dir = tempDir()
  const cluster = await startCluster(dir)
  stops.push(cluster.stop)
  // One seed is enough: the client learns the others from it.
  const [n1, n2] = await twoNodes(cluster.url)
  const keys: string[] = []
  for (let i = 0; i < 10; i++) {
    const r = await madeAndResumed(n1, n2, path.join(dir, `s${i}.pem`))
    assert.equal(r.resumed, true, `session ${i} not resumed through the cluster:\n${r.output}`)
    keys.push(r.key)
  }
  // Each of the ten sessions is held by exactly one master, the one owning its slot (a resume
  // tried again on a busy machine may have made node 2 store a session of its own as well).
  const holders = keys.map((key) => cluster.masters.filter((m) => redisCli(m.host, m.port, ['EXISTS', key]) === '1'))
  for (const [i, holding] of holders.entries()) assert.equal(holding.length, 1, `${keys[i] ?? ''} held by ${holding.length} masters`)
  // Ten random IDs all in one master's slots: odds of 3 in 59,049.
  const used = new Set(holders.map((holding) => holding[0]?.port))
  assert.ok(used.size >= 2, `all ten sessions on one master (${[...used].join(', ')})`)
})
