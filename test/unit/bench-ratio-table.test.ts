import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { HandshakeRow } from '../../benchmarks/handshake.js'
import { MIN_JUDGED_TICKS, nodeRatioTable } from '../../benchmarks/report.js'
import { clockTicksPerSecond } from '../../src/lab/proc-cpu.js'

function row (target: 'tlsfleet' | 'node', us: number, cpuSeconds: number): HandshakeRow {
  return { cert: 'rsa', target, label: target, profile: 'full-1.2', handshakes: 100, errors: 0, seconds: 1, handshakesPerSecond: 100, latencyMs: { p50: 1, p95: 2, p99: 3 }, resumedShare: null, serverCpuSeconds: cpuSeconds, serverCpuUsPerHandshake: us, serverCpuSecondsPer1000: us / 1000, roundsUsPerHandshake: [us], errorSamples: [] }
}

test('the tlsfleet / node table judges a goal only when both sides measured enough clock ticks of CPU', () => {
  const enough = (MIN_JUDGED_TICKS + 10) / clockTicksPerSecond()
  assert.match(nodeRatioTable([row('node', 800, enough), row('tlsfleet', 840, enough)]), /\| 1\.05x ok +\|/)
  assert.match(nodeRatioTable([row('node', 800, enough), row('tlsfleet', 960, enough)]), /\| 1\.20x over +\|/)
  // A tiny run: 3 ticks on one side (30 ms at 100 Hz) says nothing about a 10 % goal.
  const tiny = 3 / clockTicksPerSecond()
  assert.match(nodeRatioTable([row('node', 1000, tiny), row('tlsfleet', 1000, enough)]), /\| 1\.00x n\/a \(3 clock ticks of CPU: run longer\) +\|/)
})
