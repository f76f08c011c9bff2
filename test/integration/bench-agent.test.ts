import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { agentTable, runAgentSuite, type LatencyStats } from '../../benchmarks/agent.js'
import { makeBenchCertificate } from '../../benchmarks/certs.js'
import { defaultCpuSets } from '../../benchmarks/machine.js'
import { Progress } from '../../benchmarks/progress.js'

// The agent suite on a short bounded run (a real node under real TLS load, the reference
// responders, the prober, the spinner): every probe answered, by tlsfleet and by the reference,
// idle and loaded, in both runs, and the table says who answered. The suite's own numbers are
// in docs/benchmarks.md; a test only checks it works end to end, not how fast.
test('the agent suite probes tlsfleet and the bare reference responders side by side, idle and under load, with the prober\'s CPU kept awake', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-bench-agent-'))
  try {
    const cpus = defaultCpuSets()
    const report = await runAgentSuite({
      progress: new Progress(false), pem: makeBenchCertificate(dir, 'rsa'), serverCpus: cpus.server, clientCpus: cpus.client,
      workers: 1, processes: 1, concurrency: 4, durationMs: 2000, dir
    })
    assert.equal(report.proberCpuKeptAwake, true, 'chrt (util-linux) is installed by .ci/run')
    const answered = (what: string, s: LatencyStats, min: number): void => {
      assert.equal(s.failures, 0, `${what}: ${JSON.stringify(s)}`)
      assert.ok(s.samples >= min, `${what}: ${s.samples} samples`)
      assert.ok(s.p50Ms > 0 && s.p50Ms <= s.p99Ms && s.p99Ms <= s.maxMs, `${what}: ${JSON.stringify(s)}`)
    }
    assert.ok(report.niced !== undefined)
    for (const [name, run] of [['level', report], ['niced', report.niced]] as const) {
      assert.ok(run.handshakesPerSecondUnderLoad > 0, `${name}: the load ran`)
      for (const key of ['health', 'agent'] as const) {
        answered(`${name} idle ${key}`, run.idle[key], 100)
        answered(`${name} reference idle ${key}`, run.reference.idle[key], 100)
        answered(`${name} loaded ${key}`, run.loaded[key], 5)
        answered(`${name} reference loaded ${key}`, run.reference.loaded[key], 5)
        // Probed in the same rounds: as many answers from each.
        assert.equal(run.reference.loaded[key].samples, run.loaded[key].samples)
      }
    }
    const text = agentTable(report)
    assert.match(text, /\| GET \/health +\| tlsfleet primary +\| level +\|/)
    assert.match(text, /\| GET \/health +\| bare node:http \(reference\) +\| --worker-nice 10 \|/)
    assert.match(text, /\| agent-check +\| bare net line \(reference\) +\| level +\|/)
    assert.match(text, /prober alone on \d+ \(kept from halting by a SCHED_IDLE spinner\)/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

// The spinner takes a whole CPU: it must never outlive its bound or the bench that started it.
test('the idle spinner stops by itself at its time bound and when the process that started it is gone', async () => {
  const spinner = fileURLToPath(new URL('../../benchmarks/idle-spinner.js', import.meta.url))
  const started = Date.now()
  execFileSync(process.execPath, [spinner, '300', String(process.pid)], { timeout: 10_000 })
  assert.ok(Date.now() - started < 5000, 'stopped at its 300 ms bound')
  // A parent that leaves at once: the spinner (bound 60 s) must notice and stop.
  const pid = Number(execFileSync('sh', ['-c', `"${process.execPath}" "${spinner}" 60000 $$ > /dev/null 2>&1 & echo $!`], { encoding: 'utf8' }).trim())
  // Gone, or a zombie nobody has reaped yet (an orphan's new parent may be slow to reap).
  const alive = (): boolean => { try { return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z' } catch { return false } }
  const deadline = Date.now() + 10_000
  while (alive() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  const stillAlive = alive()
  if (stillAlive) process.kill(pid, 'SIGKILL')
  assert.equal(stillAlive, false, 'the orphaned spinner stopped')
})
