import assert from 'node:assert/strict'
import test from 'node:test'
import { analyzeAct, buildTimeline, failures, formatFailureReasons, totals, type SceneEvent } from '../../src/lab/analysis.js'
import type { ConnectionRecord } from '../../src/lab/returning-clients.js'

function record (client: number, start: number, end: number, node: string, ok: boolean, resumed = false): ConnectionRecord {
  return { client, kind: 'tls12-id', start, end, ok, resumed, offered: true, node, ...(ok ? {} : { error: 'closed during the handshake' }) }
}

test('a kill cuts what was in flight from the SIGKILL until the node was gone; a client moved after it is counted as resumed or full', () => {
  const kill: SceneEvent = { at: 1000, until: 1040, kind: 'kill', node: 'node1', label: 'node1 killed (SIGKILL)' }
  const records = [
    record(1, 500, 600, 'node1', true, true), // client 1 served by node1 before the kill
    record(1, 990, 1030, 'node1', false), // in flight at the SIGKILL: cut
    record(1, 1100, 1120, 'node2', true, true), // moved, resumed
    record(2, 400, 450, 'node1', true, true),
    record(2, 1020, 1045, 'node1', false), // accepted by the dying node's socket: cut as well
    record(2, 1200, 1230, 'node3', true, false), // moved, full handshake
    record(3, 1500, 1600, 'node2', false) // after the node was gone: not cut
  ]
  const act = analyzeAct(records, kill, 3000)
  assert.equal(act.cut, 2)
  assert.equal(act.clients, 2)
  assert.equal(act.resumed, 1)
  assert.equal(act.full, 1)
  assert.equal(act.resumedShare, 0.5)
  const without = analyzeAct(records, { ...kill, until: undefined }, 3000)
  assert.equal(without.cut, 1, 'without until only what started before the SIGKILL is cut')
  const list = failures(records, 2)
  assert.deepEqual(list.map((f) => f.start), [990, 1020], 'the first failures, bounded')
  assert.equal(formatFailureReasons(failures(records)), 'closed during the handshake 3')
})

test('the timeline adds up to the totals: a connection that ends after the last second counts in that second', () => {
  const records = [record(1, 100, 900, 'node1', true), record(2, 1500, 1900, 'node2', true, true), record(3, 1800, 2300, 'node1', true, true)]
  const rows = buildTimeline(records, ['node1', 'node2'], 2, [], [])
  const sum = rows.reduce((n, row) => n + Object.values(row.nodes).reduce((m, cell) => m + cell.full + cell.resumed + cell.errors, 0) + row.unrouted, 0)
  assert.equal(sum, totals(records).connections)
  assert.equal(rows[1]?.nodes.node1?.resumed, 1)
})
