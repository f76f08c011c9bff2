// Its own file: valgrind makes it slow, and a file shares the test timeout.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { runBench } from '../helpers/bench.js'

test('the handshake-cost suite counts a server\'s instructions per handshake under callgrind: a full TLS 1.2 handshake costs more than a resumed one, and every resume resumed', async () => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-bench-test-')), 'bench.json')
  // The plain Node server only: a tlsfleet node takes one to two minutes to start under valgrind (docs/benchmarks.md has its run).
  const { code, stdout, stderr } = await runBench(['--suites', 'handshake-cost', '--targets', 'node', '--profiles', 'full-1.2,resume-1.2-ticket', '--certs', 'ecdsa', '--cost-count', '20', '--cost-warmup', '20', '--out', out], 170_000)
  assert.equal(code, 0, stderr)
  const cost = (JSON.parse(fs.readFileSync(out, 'utf8')) as { handshakeCost: { cert: string; rows: Array<{ profile: string; target: string; handshakes: number; resumedShare: number; instructionsPerHandshake: number; compilePerHandshake: number; steadyPerHandshake: number }>; ratios: unknown[] } }).handshakeCost
  assert.equal(cost.cert, 'ecdsa')
  assert.deepEqual(cost.rows.map((r) => [r.target, r.profile, r.handshakes]), [['node', 'full-1.2', 20], ['node', 'resume-1.2-ticket', 20]])
  const [full, resumed] = cost.rows as [typeof cost.rows[0], typeof cost.rows[0]]
  assert.equal(full.resumedShare, 0)
  assert.equal(resumed.resumedShare, 1)
  for (const row of cost.rows) {
    assert.ok(row.instructionsPerHandshake > 100_000 && row.instructionsPerHandshake < 100_000_000, JSON.stringify(row))
    // V8 compiling JavaScript is counted apart (after 20 warm-up connections it is still at it).
    assert.ok(row.compilePerHandshake > 0 && row.compilePerHandshake < row.instructionsPerHandshake, JSON.stringify(row))
    assert.ok(Math.abs(row.steadyPerHandshake + row.compilePerHandshake - row.instructionsPerHandshake) <= 1, JSON.stringify(row))
  }
  // The ECDHE and the signature are what a resumed TLS 1.2 handshake saves.
  assert.ok(full.steadyPerHandshake > 1.5 * resumed.steadyPerHandshake, JSON.stringify(cost.rows))
  assert.deepEqual(cost.ratios, []) // no tlsfleet row to divide
  assert.match(stdout, /\| full-1\.2 +\| node +\| \d+ +\| - +\| - +\| \d+ +\| - +\|/)
  fs.rmSync(path.dirname(out), { recursive: true, force: true })

  // A mix of new and returning clients is the time-based suite's; this one counts one kind at a time.
  const refused = await runBench(['--suites', 'handshake-cost', '--profiles', 'mixed', '--certs', 'ecdsa'], 30_000)
  assert.equal(refused.code, 2, refused.stderr)
  assert.match(refused.stderr, /--profiles: the handshake-cost suite counts full-1\.2, full-1\.3, resume-1\.2-ticket, resume-1\.2-id, resume-1\.3-ticket, not mixed/)
})

test('a handshake-cost client that exits before warming up ends the suite at once with its exit code and stderr, and leaves no process behind', async () => {
  // The bench's directory (and so every process it starts, valgrind's server included) under a TMPDIR of this test's.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-cost-early-'))
  const started = performance.now()
  // A client script that does not exist: node exits with code 1 and "Cannot find module" at once.
  const { code, stderr } = await runBench(['--suites', 'handshake-cost', '--targets', 'node', '--profiles', 'full-1.2', '--certs', 'ecdsa', '--cost-count', '20', '--cost-warmup', '20'], 120_000,
    { env: { TMPDIR: tmp, TLSFLEET_BENCH_COST_CLIENT: path.join(tmp, 'no-such-client.js') } })
  assert.equal(code, 1, stderr)
  assert.match(stderr, /tlsfleet: handshake-cost suite: the node full-1\.2 client exited with code 1 before warming up \(20 connections\); its stderr ended with:\n[\s\S]*Cannot find module[\s\S]*\(TLSFLEET_ERR_LAB\)\n$/)
  // The plain server starts under valgrind in seconds; the client's failure is not waited on.
  assert.ok(performance.now() - started < 60_000, `${Math.round(performance.now() - started)} ms`)
  const left = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).split('\n').filter((line) => line.includes(tmp))
  assert.deepEqual(left, [])
  fs.rmSync(tmp, { recursive: true, force: true })
})
