// Its own file: valgrind makes it the slowest test (1.5-2 minutes on a quiet machine, near 3 on a
// loaded one, where it once ran past the 180 s the suite allowed then; now 330 s, package.json).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { runBench } from '../helpers/bench.js'

test('the sync-cost suite counts instructions per update under callgrind, per cipher: the receive path costs more than the AEAD open alone, ChaCha20-Poly1305 (libsodium) less than AES-256-GCM (node:crypto), and the table says so', async () => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-bench-test-')), 'bench.json')
  const { code, stdout, stderr } = await runBench(['--suites', 'sync-cost', '--sync-cost-updates', '1000', '--out', out], 320_000)
  assert.equal(code, 0, stderr)
  type Row = { cipher: string; totals: { load: number; open: number; receive: number }; openPerUpdate: number; receivePerUpdate: number; receiveOverOpen: number }
  const cost = (JSON.parse(fs.readFileSync(out, 'utf8')) as { syncCost: { updates: number; rows: Row[]; defaultOverAes: number; chachaBackend: string; valgrind: string } }).syncCost
  assert.equal(cost.updates, 1000)
  assert.deepEqual(cost.rows.map((r) => r.cipher), ['chacha20-poly1305', 'aes-256-gcm'])
  assert.equal(cost.chachaBackend, 'libsodium')
  for (const row of cost.rows) {
    assert.ok(row.totals.load > 0 && row.totals.load < row.totals.open && row.totals.open < row.totals.receive, JSON.stringify(row))
    // An AEAD open is thousands of instructions, not tens or millions.
    assert.ok(row.openPerUpdate > 2000 && row.openPerUpdate < 500_000, JSON.stringify(row))
    assert.ok(row.receiveOverOpen > 1 && row.receiveOverOpen < 10, JSON.stringify(row))
  }
  const [chacha, aes] = cost.rows as [Row, Row]
  assert.ok(chacha.openPerUpdate < aes.openPerUpdate, JSON.stringify(cost.rows))
  assert.ok(cost.defaultOverAes < 1, JSON.stringify(cost))
  assert.match(cost.valgrind, /^valgrind-\d/)
  // The human run prints its progress on stderr and the table on stdout.
  assert.match(stderr, /sync-cost: chacha20-poly1305: \d+ instructions per update received/)
  assert.match(stdout, /\| AEAD +\| updates \| open only, instructions\/update \| sync receive path, instructions\/update \| receive ÷ open \|/)
  assert.match(stdout, /\| chacha20-poly1305 \(libsodium\) \| 1000 +\| \d+ +\| \d+ +\| \d+(\.\d+)? +\|/)
  assert.match(stdout, /\| aes-256-gcm \(node:crypto\) +\| 1000 +\| \d+ +\| \d+ +\| \d+(\.\d+)? +\|/)
  assert.match(stdout, /receive path with the default cipher ÷ with aes-256-gcm: 0\.\d+/)

  fs.rmSync(path.dirname(out), { recursive: true, force: true })
})
