// Its own file: valgrind makes it the slowest test (1.5-2 minutes on a quiet machine, near 3 on a
// loaded one, where it once ran past the 180 s the suite allowed then; now 330 s, package.json).
// The refused rows add 7 processes (~10-15 s each, two at a time) at 1000 datagrams: at 100, a
// process's run-to-run spread (a few million instructions) outweighed the 2.7M of 100 forgeries.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { runBench } from '../helpers/bench.js'

test('the sync-cost suite counts instructions per update under callgrind, per cipher: the receive path costs more than the AEAD open alone, ChaCha20-Poly1305 (libsodium) less than AES-256-GCM (node:crypto); and per refused datagram (forged, our own echo), every packet refused; the tables say so', async () => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-bench-test-')), 'bench.json')
  const { code, stdout, stderr } = await runBench(['--suites', 'sync-cost', '--sync-cost-updates', '1000', '--sync-cost-refused', '1000', '--out', out], 320_000)
  assert.equal(code, 0, stderr)
  type Row = { cipher: string; totals: { load: number; open: number; receive: number }; openPerUpdate: number; receivePerUpdate: number; receiveOverOpen: number }
  type Refused = { kind: string; cipher: string; bytes: number; packetsPerDatagram: number; reason: string; refused: number; totals: { baseline: number; refused: number }; perDatagram: number; perPacket: number }
  const cost = (JSON.parse(fs.readFileSync(out, 'utf8')) as { syncCost: { updates: number; rows: Row[]; defaultOverAes: number; refused: { datagrams: number; rows: Refused[] }; chachaBackend: string; valgrind: string } }).syncCost
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

  // Refused datagrams: which rows, each packet refused under its reason, costs that are counts.
  assert.equal(cost.refused.datagrams, 1000)
  assert.deepEqual(cost.refused.rows.map((r) => `${r.kind} ${r.cipher} ${r.reason} ${r.packetsPerDatagram} ${r.bytes}`), [
    'forged chacha20-poly1305 bad_tag 1 248', 'forged aes-256-gcm bad_tag 1 248',
    // The smallest sealed packet (a Del of a 1-byte id), as many as fit 1400 bytes.
    'forged-batch chacha20-poly1305 bad_tag 22 1392', 'forged-batch aes-256-gcm bad_tag 22 1392',
    'own chacha20-poly1305 own 1 248', 'own-batch chacha20-poly1305 own 5 1256'
  ])
  for (const r of cost.refused.rows) {
    assert.equal(r.refused, 1000 * r.packetsPerDatagram, JSON.stringify(r))
    assert.ok(r.totals.baseline > 0 && r.totals.refused > r.totals.baseline, JSON.stringify(r))
    // Thousands of instructions per datagram, not tens or millions.
    assert.ok(Number.isFinite(r.perDatagram) && r.perDatagram > 1000 && r.perDatagram < 1_000_000, JSON.stringify(r))
    // Both rounded from one unrounded count.
    assert.ok(Math.abs(r.perPacket - r.perDatagram / r.packetsPerDatagram) <= 1, JSON.stringify(r))
  }
  // The batch caps: a forged batch opens two of its 22 packets, so it costs far less than 22 lone forgeries.
  for (const cipher of ['chacha20-poly1305', 'aes-256-gcm']) {
    const [one, batch] = ['forged', 'forged-batch'].map((kind) => cost.refused.rows.find((r) => r.kind === kind && r.cipher === cipher) as Refused)
    assert.ok((batch as Refused).perDatagram < 10 * (one as Refused).perDatagram, JSON.stringify([one, batch]))
  }
  // The human run prints its progress on stderr and the table on stdout.
  assert.match(stderr, /sync-cost: chacha20-poly1305: \d+ instructions per update received/)
  assert.match(stdout, /\| AEAD +\| updates \| open only, instructions\/update \| sync receive path, instructions\/update \| receive ÷ open \|/)
  assert.match(stdout, /\| chacha20-poly1305 \(libsodium\) \| 1000 +\| \d+ +\| \d+ +\| \d+(\.\d+)? +\|/)
  assert.match(stdout, /\| aes-256-gcm \(node:crypto\) +\| 1000 +\| \d+ +\| \d+ +\| \d+(\.\d+)? +\|/)
  assert.match(stdout, /receive path with the default cipher ÷ with aes-256-gcm: 0\.\d+/)
  assert.match(stderr, /sync-cost: forged: a batch of 22 Del, tags flipped \(aes-256-gcm, 1392 bytes\): \d+ instructions per datagram, 22000 packets refused bad_tag/)
  assert.match(stdout, /\| refused datagram +\| AEAD +\| bytes \| datagrams \| packets refused \| instructions\/datagram \| instructions\/packet \|/)
  assert.match(stdout, /\| forged: a New, tag flipped +\| chacha20-poly1305 \(libsodium\) \| 248 +\| 1000 +\| 1000 bad_tag +\| \d+ +\| \d+ +\|/)
  assert.match(stdout, /\| our own echo: a batch of 5 New +\| chacha20-poly1305 \(libsodium\) \| 1256 +\| 1000 +\| 5000 own +\| \d+ +\| \d+ +\|/)

  fs.rmSync(path.dirname(out), { recursive: true, force: true })
})
