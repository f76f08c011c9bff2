import assert from 'node:assert/strict'
import { test } from 'node:test'
import { waitForClose, waitForLine } from '../../src/lab/child-waits.js'
import { spawnChild } from '../../src/lab/processes.js'

// The lab's and the bench's waits on a child: each ends at the child's exit or after its bound,
// never hangs (the handshake-cost suite once waited forever for a client that had died).

test('waitForLine ends at once when the child exits first, naming the exit code and its stderr', async () => {
  const child = spawnChild(process.execPath, ['-e', 'console.error("no server here"); process.exit(4)'])
  const started = performance.now()
  await assert.rejects(waitForLine(child, (l) => l === 'warm', { what: 'the test client', waitingFor: 'warming up', timeoutMs: 60_000 }),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'TLSFLEET_ERR_LAB')
      assert.match(err.message, /^the test client exited with code 4 before warming up; its stderr ended with:\nno server here$/)
      return true
    })
  assert.ok(performance.now() - started < 10_000)
})

test('waitForLine: a command that cannot be started (`false`, a missing binary) fails at once', async () => {
  await assert.rejects(waitForLine(spawnChild('false', []), () => true, { what: 'false', waitingFor: 'a line', timeoutMs: 60_000 }), /false exited with code 1 before a line \(no stderr\)/)
  await assert.rejects(waitForLine(spawnChild('/nonexistent/tlsfleet-test-binary', []), () => true, { what: 'the missing binary', waitingFor: 'a line', timeoutMs: 60_000 }),
    /the missing binary (could not be started: spawn \/nonexistent\/tlsfleet-test-binary ENOENT|exited with code -2)/)
})

test('waitForLine is bounded: a silent child is stopped after timeoutMs and the wait rejects', async () => {
  const child = spawnChild(process.execPath, ['-e', 'setInterval(() => {}, 1000)'])
  await assert.rejects(waitForLine(child, () => true, { what: 'the silent child', waitingFor: 'warming up', timeoutMs: 300 }), /the silent child did not reach warming up within 0.3 s \(stopped\)/)
  assert.ok(child.exitCode !== null || child.signalCode !== null, 'stopped')
})

test('waitForLine resolves with the matching line; waitForClose with the exit code, bounded too', async () => {
  const child = spawnChild(process.execPath, ['-e', 'console.log("starting"); console.log("warm"); setTimeout(() => process.exit(0), 100)'])
  assert.equal(await waitForLine(child, (l) => l === 'warm', { what: 'c', waitingFor: 'warm', timeoutMs: 10_000 }), 'warm')
  assert.equal(await waitForClose(child, { what: 'c', timeoutMs: 10_000 }), 0)
  assert.equal(await waitForClose(child, { what: 'c', timeoutMs: 10_000 }), 0) // already closed
  const stuck = spawnChild(process.execPath, ['-e', 'setInterval(() => {}, 1000)'])
  await assert.rejects(waitForClose(stuck, { what: 'the stuck child', timeoutMs: 300 }), /the stuck child did not finish within 0.3 s \(stopped\)/)
  assert.ok(stuck.exitCode !== null || stuck.signalCode !== null, 'stopped')
})
