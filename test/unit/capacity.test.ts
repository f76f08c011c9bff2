import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CapacityEstimator, workerShareWeight } from '../../src/agent/capacity.js'

/** Deterministic PRNG (mulberry32) so the noisy input is the same on every run. */
function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function changes (values: number[]): number {
  let n = 0
  for (let i = 1; i < values.length; i++) if (values[i] !== values[i - 1]) n++
  return n
}

test('reports 100 before any sample and for an idle node', () => {
  const est = new CapacityEstimator()
  assert.equal(est.weightPercent(), 100)
  for (let i = 0; i < 10; i++) est.update({ eventLoopUtilization: 0.01, handshakesPerSecond: 0 })
  assert.equal(est.weightPercent(), 100)
})

test('noisy load around a level does not flap', () => {
  const random = rng(42)
  const est = new CapacityEstimator({ alpha: 0.3, hysteresisPercent: 10 })
  const reported: number[] = []
  for (let i = 0; i < 40; i++) est.update({ eventLoopUtilization: 0.5, handshakesPerSecond: 0 }) // settle at 50
  for (let i = 0; i < 1000; i++) {
    est.update({ eventLoopUtilization: 0.5 + (random() - 0.5) * 0.2, handshakesPerSecond: 0 }) // ±10 points
    reported.push(est.weightPercent())
  }
  assert.ok(changes(reported) <= 2, `weight changed ${changes(reported)} times on noise`)
  for (const value of reported) assert.ok(Math.abs(value - 50) <= 10, `reported ${value} far from 50`)
})

test('reported values are multiples of the quantum, within [min, 100]', () => {
  const random = rng(7)
  const est = new CapacityEstimator({ minPercent: 10 })
  for (let i = 0; i < 2000; i++) {
    est.update({ eventLoopUtilization: random(), handshakesPerSecond: random() * 2000, maxHandshakesPerSecond: 1000 })
    const value = est.weightPercent()
    assert.equal(value % 5, 0)
    assert.ok(value >= 10 && value <= 100, `out of range: ${value}`)
  }
})

test('a step in load converges to the new level', () => {
  const est = new CapacityEstimator({ alpha: 0.3, hysteresisPercent: 10 })
  for (let i = 0; i < 20; i++) est.update({ eventLoopUtilization: 0.1, handshakesPerSecond: 0 })
  assert.equal(est.weightPercent(), 90)
  const after: number[] = []
  for (let i = 0; i < 60; i++) {
    est.update({ eventLoopUtilization: 0.6, handshakesPerSecond: 0 })
    after.push(est.weightPercent())
  }
  // Within 10 samples the weight is within one quantum of 40 (the hysteresis band lets it rest
  // there), moving only downwards, and then it never changes again.
  const settled = after[9] ?? -1
  assert.ok(Math.abs(settled - 40) <= 5, `settled at ${settled}`)
  assert.deepEqual(after.slice(9), Array(51).fill(settled))
  assert.ok(after.every((v, i) => i === 0 || v <= (after[i - 1] ?? 100)), `not monotonic: ${after.join(',')}`)
  // And back when the load goes away: an idle node gets exactly 100 again.
  for (let i = 0; i < 30; i++) est.update({ eventLoopUtilization: 0, handshakesPerSecond: 0 })
  assert.equal(est.weightPercent(), 100)
})

test('handshake rate counts as load when it is the bigger one', () => {
  const est = new CapacityEstimator({ alpha: 1 })
  est.update({ eventLoopUtilization: 0.2, handshakesPerSecond: 700, maxHandshakesPerSecond: 1000 })
  assert.equal(est.weightPercent(), 30)
  est.update({ eventLoopUtilization: 0.2, handshakesPerSecond: 700 }) // no max: handshakes ignored
  assert.equal(est.weightPercent(), 80)
})

test('a saturated node keeps the minimum weight, not 0', () => {
  const est = new CapacityEstimator({ minPercent: 10 })
  for (let i = 0; i < 50; i++) est.update({ eventLoopUtilization: 1.5, handshakesPerSecond: 5000, maxHandshakesPerSecond: 1000 })
  assert.equal(est.weightPercent(), 10)
})

test('bad samples and options are rejected', () => {
  const est = new CapacityEstimator()
  assert.throws(() => est.update({ eventLoopUtilization: Number.NaN, handshakesPerSecond: 0 }), /eventLoopUtilization/)
  assert.throws(() => est.update({ eventLoopUtilization: 0.5, handshakesPerSecond: -1 }), /handshakesPerSecond/)
  assert.equal(est.weightPercent(), 100, 'nothing changed')
  assert.throws(() => new CapacityEstimator({ alpha: 0 }), /alpha/)
  assert.throws(() => new CapacityEstimator({ minPercent: 0 }), /minPercent/)
})

test('a node with part of its workers has that part of its capacity: the weight is scaled at once, on the 5 % grid, never under the floor', () => {
  assert.equal(workerShareWeight(100, 1, 5, 10), 100, 'all workers: the load alone')
  assert.equal(workerShareWeight(100, 1 / 2, 5, 10), 50, '1 of 2 idle workers')
  assert.equal(workerShareWeight(100, 1 / 8, 5, 10), 15, '1 of 8 idle workers (12.5 on the grid)')
  assert.equal(workerShareWeight(60, 3 / 4, 5, 10), 45, '3 of 4 workers 40 % busy')
  assert.equal(workerShareWeight(10, 1 / 2, 5, 10), 10, 'saturated and half there: the floor')
  assert.equal(workerShareWeight(100, 1 / 64, 5, 10), 10, 'a trickle for a node that serves at all')
  assert.equal(workerShareWeight(80, Number.NaN, 5, 10), 80, 'no share known: the load alone')
  assert.equal(workerShareWeight(80, 2, 5, 10), 80, 'never above the load\'s weight')

  const est = new CapacityEstimator()
  for (let i = 0; i < 10; i++) est.update({ eventLoopUtilization: 0.01, handshakesPerSecond: 0 })
  assert.equal(est.weightPercent(1 / 2), 50, 'no smoothing: HAProxy must send less from the next check on')
  assert.equal(est.weightPercent(), 100, 'the load\'s own weight is untouched')
})
