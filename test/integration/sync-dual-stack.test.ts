import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { DnsResponder } from '../helpers/dns-responder.js'
import { sClient, startFarm, type FarmNode } from '../helpers/farm.js'
import { eventually } from '../helpers/node-process.js'

// Two dual-stack nodes ([::]) that find each other by a name with an A and an AAAA record, as a
// dual-stack Kubernetes headless service answers: each peer node is two sync targets.
const NAME = 'peers.test'
let dns: DnsResponder
let farm: Awaited<ReturnType<typeof startFarm>>
let n1: FarmNode, n2: FarmNode

before(async () => {
  dns = await DnsResponder.start()
  dns.records.set(NAME, ['127.0.0.1', '::1'])
  farm = await startFarm(['127.0.0.1', '127.0.0.2'], {
    startTimeoutMs: 60_000,
    // No warm join: neither node has heard the other before the first update.
    extra: ['--warm-join-timeout', '0'],
    sync: (i, ports) => ['--sync-listen', `[::]:${ports[i] as number}`, '--sync-peer', `dns:${NAME}:${ports[1 - i] as number}`, '--sync-dns-server', dns.server]
  })
  ;[n1, n2] = farm.nodes as [FarmNode, FarmNode]
})

after(async () => {
  await farm?.stop()
  await dns?.close()
})

const tls12 = { tls: '1.2' as const, extra: ['-no_ticket'] }
const inbound = async (node: FarmNode, result: string): Promise<number> => await node.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result })

let made = 0
/** A full handshake on `on`, and its New accepted by `other` (and any second copy arrived). */
async function handshake (on: FarmNode, other: FarmNode): Promise<void> {
  const accepted = await inbound(other, 'accepted')
  const out = await sClient({ host: on.host, port: on.port, sessOut: path.join(farm.dir, `s${made++}.pem`), ...tls12 })
  assert.equal(out.reused, false, out.output)
  await eventually(async () => await inbound(other, 'accepted') > accepted, 5000, 'the New accepted')
  await new Promise((resolve) => setTimeout(resolve, 200))
}

async function sentTo (from: FarmNode, to: FarmNode): Promise<number> {
  const peers = ((await (await fetch(`${from.node.adminUrl}/v1/peers`)).json()) as { peers: Array<{ address: string; packetsOut: number }> }).peers
  return peers.filter((p) => p.address === `127.0.0.1:${to.sync}` || p.address === `[::1]:${to.sync}`).reduce((sum, p) => sum + p.packetsOut, 0)
}

test('a dual-stack peer found by its A and AAAA records gets each update once, once the nodes have heard each other; the copies before that are duplicates, never replays', async () => {
  // Until then each New goes to both addresses: the second copy is counted as a duplicate.
  await handshake(n1, n2)
  assert.equal(await inbound(n2, 'replay'), 0, 'the second copy was counted as a replay')
  assert.equal(await inbound(n2, 'duplicate'), 1)
  // Each node learns the other's addresses from what it receives (the copies included).
  for (let i = 0; i < 2; i++) {
    await handshake(n2, n1)
    await handshake(n1, n2)
  }
  const duplicates = [await inbound(n1, 'duplicate'), await inbound(n2, 'duplicate')]
  const accepted = [await inbound(n1, 'accepted'), await inbound(n2, 'accepted')]
  const sent = [await sentTo(n1, n2), await sentTo(n2, n1)]
  for (let i = 0; i < 3; i++) {
    await handshake(n1, n2)
    await handshake(n2, n1)
  }
  assert.deepEqual([await inbound(n1, 'accepted') - (accepted[0] as number), await inbound(n2, 'accepted') - (accepted[1] as number)], [3, 3])
  assert.deepEqual([await inbound(n1, 'duplicate'), await inbound(n2, 'duplicate')], duplicates, 'a learnt peer still gets two copies')
  assert.deepEqual([await sentTo(n1, n2) - (sent[0] as number), await sentTo(n2, n1) - (sent[1] as number)], [3, 3], 'updates sent to both addresses of one node')
  assert.deepEqual([await inbound(n1, 'replay'), await inbound(n2, 'replay')], [0, 0])
  // /v1/peers: one row for the peer node, with both of its addresses and the counts of both.
  for (const [from, to] of [[n1, n2], [n2, n1]] as const) {
    const peers = ((await (await fetch(`${from.node.adminUrl}/v1/peers`)).json()) as { peers: Array<{ address: string; addresses?: string[]; nodeId?: string; packetsIn: number }> }).peers
    assert.equal(peers.length, 1, JSON.stringify(peers))
    assert.deepEqual([...peers[0]?.addresses ?? []].sort(), [`127.0.0.1:${to.sync}`, `[::1]:${to.sync}`].sort())
    assert.ok((peers[0]?.packetsIn ?? 0) >= 5, JSON.stringify(peers))
  }
})
