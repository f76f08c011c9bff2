import assert from 'node:assert/strict'
import test from 'node:test'
import { analyzeAct, buildTimeline, failures, formatAct, formatFailureReasons, totals, type SceneEvent } from '../../src/lab/analysis.js'
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

test('rows printed while the scene runs leave connections of later seconds to their own rows (each counted once)', () => {
  const records = [record(1, 100, 900, 'node1', true), record(2, 1500, 1900, 'node2', true, true), record(3, 1800, 2300, 'node1', true, true)]
  const live = buildTimeline(records, ['node1', 'node2'], 1, [], [], false)
  assert.equal(live[0]?.nodes.node1?.full, 1)
  assert.equal(live[0]?.nodes.node1?.resumed, 0, 'a connection of second 3 is not in the row of second 1')
  assert.equal(live[0]?.nodes.node2?.resumed, 0)
  const final = buildTimeline(records, ['node1', 'node2'], 3, [], [], false)
  assert.deepEqual(final.map((r) => r.nodes.node1?.resumed), [0, 0, 1])
})

test('an act\'s summary names, per client kind, how many of its clients moved and resumed (not "0/0")', () => {
  const event = { at: 1000, kind: 'drain' as const, node: 'node1', label: 'node1 drained' }
  const text = formatAct({ event, clients: 3, resumed: 1, full: 0, notMoved: 2, failedAttempts: 0, cut: 0, resumedShare: 1, byKind: { 'tls12-id': { clients: 2, resumed: 0, full: 0, failed: 0 }, 'tls13-ticket': { clients: 1, resumed: 1, full: 0, failed: 0 } } })
  assert.match(text, /\[tls12-id 0 of 2 moved, 0 resumed; tls13-ticket 1 of 1 moved, 1 resumed\]$/)
  const restart = formatAct({ event: { ...event, kind: 'restart', label: 'node1 restarted' }, clients: 4, resumed: 3, full: 1, notMoved: 0, failedAttempts: 0, cut: 0, resumedShare: 0.75, byKind: { 'tls13-ticket': { clients: 4, resumed: 3, full: 1, failed: 0 } } })
  assert.match(restart, /\[tls13-ticket 3 of 4 resumed\]$/)
})
