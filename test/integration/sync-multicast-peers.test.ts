import assert from 'node:assert/strict'
import path from 'node:path'
import { test } from 'node:test'
import { v2NodeId } from '../../src/sync/codecs.js'
import { restartForWarmJoin, resumesEventually, sClient, startFarm, type FarmNode } from '../helpers/farm.js'
import { eventually } from '../helpers/node-process.js'
import { freePort } from '../helpers/ports.js'

interface Row { address: string; addresses?: string[]; nodeId?: string; configured: boolean; packetsIn: number; packetsOut: number }

async function peersOf (node: FarmNode): Promise<Row[]> {
  return ((await (await fetch(`${node.node.adminUrl}/v1/peers`)).json()) as { peers: Row[] }).peers
}

const idOf = (name: string): string => v2NodeId(name).toString('hex')

test('multicast: /v1/peers has one row per node, by its node id, with the addresses it was heard from (nodes on one host share the group port)', async () => {
  const port = await freePort()
  const farm = await startFarm(['127.0.0.1', '127.0.0.2', '127.0.0.3'], {
    sync: () => ['--sync-listen', `239.255.42.97:${port}`, '--sync-interface', '127.0.0.1,1']
  })
  try {
    const [n1, n2, n3] = farm.nodes as [FarmNode, FarmNode, FarmNode]
    // A session made on node 2 and one on node 3: node 1 hears both from 127.0.0.1:<group port>.
    for (const [i, from] of [[2, n2], [3, n3]] as const) {
      const sess = path.join(farm.dir, `from-${i}.pem`)
      assert.equal((await sClient({ host: from.host, port: from.port, tls: '1.2', sessOut: sess, extra: ['-no_ticket'] })).reused, false)
      assert.equal((await resumesEventually(async () => await sClient({ host: n1.host, port: n1.port, tls: '1.2', sessIn: sess, extra: ['-no_ticket'] }))).reused, true)
    }
    await eventually(async () => (await peersOf(n1)).filter((p) => p.nodeId !== undefined && p.packetsIn > 0).length >= 2, 5000, 'both nodes heard')
    const rows = await peersOf(n1)
    const nodeRows = rows.filter((p) => p.nodeId !== undefined)
    assert.deepEqual(nodeRows.map((p) => p.nodeId).sort(), [idOf('node2'), idOf('node3')].sort(), JSON.stringify(rows))
    for (const row of nodeRows) {
      assert.equal(row.configured, true, 'a node heard in the configured group')
      assert.ok(row.addresses?.includes(`127.0.0.1:${port}`), JSON.stringify(row))
    }

    // Node 3's warm join asks from its snapshot socket, and node 1 answers there: still node 3's one row.
    const sessions = await restartForWarmJoin(n3)
    assert.ok(sessions >= 1, `the warm join brought ${sessions} sessions`)
    const after = await peersOf(n1)
    const node3 = after.filter((p) => p.nodeId === idOf('node3'))
    assert.equal(node3.length, 1, JSON.stringify(after))
    const row = node3[0] as Row
    assert.ok((row.addresses ?? []).length >= 2, `the group port and the snapshot socket: ${JSON.stringify(row)}`)
    assert.ok(row.packetsOut > 0, 'the challenge and the snapshot are counted on the node\'s row')
    const others = after.filter((p) => p.nodeId === undefined && (row.addresses ?? []).includes(p.address))
    assert.deepEqual(others, [], 'an address of node 3 has a row of its own')
  } finally {
    await farm.stop()
  }
})
