import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { freeTcpUdpPort } from '../../src/util/free-port.js'
import { DnsPeerSource } from '../../src/sync/peer-source.js'
import { createLogger } from '../../src/util/logger.js'
import { DnsResponder } from '../helpers/dns-responder.js'
import { resumesEventually, sClient, startFarm, type FarmNode } from '../helpers/farm.js'
import { eventually } from '../helpers/node-process.js'

// Three nodes on 127.0.0.1-3, all with the sync on the same port, finding their peers through
// one DNS name that a test-controlled DNS server answers (no /etc/hosts edits).
const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3']
const NAME = 'nodes.farm.test'
let dns: DnsResponder
let syncPort: number
let farm: Awaited<ReturnType<typeof startFarm>>
let n1: FarmNode, n2: FarmNode, n3: FarmNode

before(async () => {
  dns = await DnsResponder.start()
  dns.records.set(NAME, ['127.0.0.1', '127.0.0.2'])
  syncPort = await freeTcpUdpPort('0.0.0.0')
  farm = await startFarm(HOSTS, {
    startTimeoutMs: 60_000,
    sync: (i) => ['--sync-listen', `${HOSTS[i] as string}:${syncPort}`, '--sync-peer', `dns:${NAME}:${syncPort}`, '--sync-dns-server', dns.server, '--sync-peer-refresh', '0.5']
  })
  ;[n1, n2, n3] = farm.nodes as [FarmNode, FarmNode, FarmNode]
})

after(async () => {
  await farm?.stop()
  await dns?.close()
})

const tls12 = { tls: '1.2' as const, extra: ['-no_ticket'] }
const peer = (host: string): string => `${host}:${syncPort}`

async function peersOf (node: FarmNode): Promise<Array<{ address: string; packetsOut: number; configured: boolean }>> {
  return ((await (await fetch(`${node.node.adminUrl}/v1/peers`)).json()) as { peers: Array<{ address: string; packetsOut: number; configured: boolean }> }).peers
}
async function sentTo (from: FarmNode, host: string): Promise<number> {
  return (await peersOf(from)).find((p) => p.address === peer(host))?.packetsOut ?? 0
}
async function madeOnNode1 (name: string): Promise<string> {
  const file = path.join(farm.dir, name)
  assert.equal((await sClient({ host: n1.host, port: n1.port, sessOut: file, ...tls12 })).reused, false)
  return file
}

test('peers come from DNS at start: node 1 sends to node 2 (in the name), not to node 3 (not yet), never to itself', async () => {
  // (Node 1 has answered node 3's warm-join request already: a reply, counted as sent to it.)
  const toNode3 = await sentTo(n1, '127.0.0.3')
  const sess = await madeOnNode1('start.pem')
  const on2 = await resumesEventually(async () => await sClient({ host: n2.host, port: n2.port, sessIn: sess, ...tls12 }))
  assert.equal(on2.reused, true, on2.output)
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal((await sClient({ host: n3.host, port: n3.port, sessIn: sess, ...tls12 })).reused, false, 'node 3 is not in the name yet')
  assert.equal(await sentTo(n1, '127.0.0.3'), toNode3, 'node 1 sent a New to node 3')
  assert.equal(await sentTo(n1, '127.0.0.1'), 0, 'node 1 sent to itself')
  assert.equal(await n1.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'own' }), 0)
})

test('a peer added to the name is picked up without a restart, and one removed is dropped', async () => {
  dns.records.set(NAME, ['127.0.0.1', '127.0.0.2', '127.0.0.3'])
  await n1.node.waitForLog((l) => l.msg === 'sync peers changed' && (l.added as string[]).includes(peer('127.0.0.3')), 5000)
  const added = await madeOnNode1('added.pem')
  const on3 = await resumesEventually(async () => await sClient({ host: n3.host, port: n3.port, sessIn: added, ...tls12 }))
  assert.equal(on3.reused, true, `node 3 did not get the session once in the name:\n${on3.output}`)

  dns.records.set(NAME, ['127.0.0.1', '127.0.0.3'])
  await n1.node.waitForLog((l) => l.msg === 'sync peers changed' && (l.removed as string[]).includes(peer('127.0.0.2')), 5000)
  const sentBefore = await sentTo(n1, '127.0.0.2')
  const removed = await madeOnNode1('removed.pem')
  await eventually(async () => await sentTo(n1, '127.0.0.3') > 0, 3000, 'a New to node 3')
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(await sentTo(n1, '127.0.0.2'), sentBefore, 'node 1 still sends to a peer gone from the name')
  assert.equal((await sClient({ host: n2.host, port: n2.port, sessIn: removed, ...tls12 })).reused, false)
  const listed = await peersOf(n1)
  assert.equal(listed.find((p) => p.address === peer('127.0.0.2'))?.configured, false, 'a peer gone from the name is no longer shown as configured')
  assert.equal(listed.find((p) => p.address === peer('127.0.0.3'))?.configured, true)
  assert.equal(await sentTo(n1, '127.0.0.1'), 0, 'node 1 sent to itself')
})

test('the peer source reads A and AAAA records, leaves out its own address and those its socket cannot reach, and keeps the last answer when DNS fails', async () => {
  const name = 'mixed.farm.test'
  dns.records.set(name, ['127.0.0.1', '127.0.0.5', '::1'])
  const silentLog = createLogger({ level: 'silent', format: 'json', name: 'test' })
  // A socket on [::] reaches both families; one on an IPv4 address only IPv4, one on an IPv6 address only IPv6.
  for (const [self, expected] of [['::', ['127.0.0.1:7000', '127.0.0.5:7000', '127.0.0.9:7000', '::1:7000']], ['fd00::1', ['::1:7000']]] as const) {
    const other = new DnsPeerSource({ peers: [{ dns: name, port: 7000 }, { host: '127.0.0.9', port: 7000 }], self: { host: self, port: 7001 }, refreshMs: 60_000, server: dns.server, log: silentLog })
    try {
      await other.start()
      assert.deepEqual(other.list().map((p) => `${p.host}:${p.port}`).sort(), [...expected], `listening on ${self}`)
    } finally { other.close() }
  }
  const source = new DnsPeerSource({ peers: [{ dns: name, port: 7000 }, { host: '127.0.0.9', port: 7000 }], self: { host: '127.0.0.1', port: 7000 }, refreshMs: 60_000, server: dns.server, log: silentLog })
  try {
    await source.start()
    assert.deepEqual(source.list().map((p) => `${p.host}:${p.port}`).sort(), ['127.0.0.5:7000', '127.0.0.9:7000'], 'an IPv4 socket: no AAAA peer')
    dns.records.delete(name) // NXDOMAIN: the name is gone, so are its peers
    await source.refresh()
    assert.deepEqual(source.list().map((p) => p.host), ['127.0.0.9'])
  } finally { source.close() }
  // A server that does not answer: the last list stays.
  const silent = new DnsPeerSource({ peers: [{ dns: name, port: 7000 }], self: { host: '127.0.0.1', port: 7000 }, refreshMs: 60_000, server: '127.0.0.1:9', log: createLogger({ level: 'silent', format: 'json', name: 'test' }) })
  try {
    await silent.refresh()
    assert.deepEqual(silent.list(), [])
  } finally { silent.close() }
})
