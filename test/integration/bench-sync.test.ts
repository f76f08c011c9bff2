import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Progress } from '../../benchmarks/progress.js'
import { runSyncSuite, syncTable } from '../../benchmarks/sync.js'

// The sync suite on a small bounded run (two real nodes of the lab farm, real UDP): the rate is
// offered once per cipher, node2 opens both, and the report and table say so. The suite's own
// numbers (100k/s and up) are in docs/benchmarks.md; a test only checks it works end to end.
test('the sync suite offers each rate sealed with each cipher to one node, which accepts both, and reports what each sustained', async () => {
  const report = await runSyncSuite({ progress: new Progress(false), samples: 5, rates: [2000] })
  assert.equal(report.propagation.samples, 5)
  assert.equal(report.propagation.neverResumed, 0, JSON.stringify(report.propagation))
  assert.deepEqual(report.rate.map((r) => [r.cipher, r.offeredPerSecond, r.sent]), [['chacha20-poly1305', 2000, 2000], ['aes-256-gcm', 2000, 2000]])
  for (const row of report.rate) {
    // 2,000 updates in one second is far below what a node absorbs: nothing may be lost.
    assert.equal(row.accepted, row.sent, JSON.stringify(row))
    assert.ok(row.datagrams < row.sent, `batched: ${row.datagrams} datagrams for ${row.sent} updates`)
  }
  assert.deepEqual(report.sustainedByCipher, { 'chacha20-poly1305': 2000, 'aes-256-gcm': 2000 })
  assert.equal(report.sustainedPerSecond, 2000)
  const text = syncTable(report)
  assert.match(text, /\| sealed with +\| offered New\/s \|/)
  assert.match(text, /\| chacha20-poly1305 \| 2000 +\| 2000 \|/)
  assert.match(text, /\| aes-256-gcm +\| 2000 +\| 2000 \|/)
  assert.match(text, /sustained without loss: 2000 New\/s sealed with chacha20-poly1305, 2000 New\/s sealed with aes-256-gcm/)
})
