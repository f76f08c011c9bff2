import assert from 'node:assert/strict'
import test from 'node:test'
import type { MetricObjectWithValues, MetricValue } from 'prom-client'
import { MonotonicSums } from '../../src/metrics/monotonic-sums.js'

type Json = Array<MetricObjectWithValues<MetricValue<string>>>

function page (sum: number, count: number, gauge: number): Json {
  return [
    { name: 'gc_seconds', help: 'h', type: 'histogram', aggregator: 'sum', values: [{ metricName: 'gc_seconds_sum', labels: { kind: 'minor' }, value: sum }, { metricName: 'gc_seconds_count', labels: { kind: 'minor' }, value: count }] },
    { name: 'open', help: 'h', type: 'gauge', aggregator: 'sum', values: [{ labels: {}, value: gauge }] }
  ] as unknown as Json
}

test('a float sum a rounding step lower than the last page is served as the last value; gauges and real drops are left alone', () => {
  const sums = new MonotonicSums()
  // 0.1 + 0.2 + 0.3 and 0.3 + 0.2 + 0.1 differ in the last digit: the order a dead worker's counts come in.
  const first = 0.1 + 0.2 + 0.3
  const reordered = 0.3 + 0.2 + 0.1
  assert.ok(reordered < first, 'the premise: float addition order changes the last digit')
  sums.hold(page(first, 10, 5))
  const second = sums.hold(page(reordered, 10, 2))
  assert.equal(second[0]?.values[0]?.value, first)
  assert.equal(second[1]?.values[0]?.value, 2, 'a gauge goes down freely')
  const third = sums.hold(page(0.5, 9, 2))
  assert.equal(third[0]?.values[0]?.value, 0.5, 'a real drop shows')
  assert.equal(third[0]?.values[1]?.value, 9)
  const fourth = sums.hold(page(0.7, 11, 2))
  assert.equal(fourth[0]?.values[0]?.value, 0.7, 'growth passes')
})
