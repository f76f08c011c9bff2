import assert from 'node:assert/strict'
import { test } from 'node:test'
import { killInterval, soakTable, type SoakReport } from '../../benchmarks/soak.js'

const report: SoakReport = {
  seconds: 15, rssBoundMb: 256, workers: 2, handshakes: 1690, resumed: 1352, errors: 3761, workerKills: 2, killEverySeconds: 5,
  syncFlood: { datagrams: 20000, rejectedCounted: 20000, droppedKernel: 0 }, scrapes: 5, agentProbes: 15, agentFailures: 6, agentMaxMs: 20.8,
  processes: [{ role: 'primary', pid: 10, samples: 10, firstMb: 133.9, maxMb: 161.9, lastMb: 161.9, killed: false }],
  checks: [{ check: 'the agent answered every check', pass: false, detail: '9/15, slowest 20.8 ms' }]
}

test('a failed soak names the failing check, whether the primary outlived the run, and the node\'s last output', () => {
  const text = soakTable({ ...report, failure: { primaryAlive: false, nodeOutput: ['{"level":60,"msg":"uncaught exception"}'] } })
  assert.match(text, /the agent answered every check\s*\|\s*FAIL/)
  assert.match(text, /the primary was gone at the end; the node's last output:\n\{"level":60,"msg":"uncaught exception"\}$/)
  assert.doesNotMatch(soakTable(report), /last output/, 'a run that passed prints no failure block')
})

test('workers are killed every minute, or three times in a shorter soak', () => {
  assert.equal(killInterval(600), 60)
  assert.equal(killInterval(180), 60)
  assert.equal(killInterval(15), 5)
  assert.equal(killInterval(5), 3)
})
