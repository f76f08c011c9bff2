import assert from 'node:assert/strict'
import test from 'node:test'
import { PrimaryMetrics, type MetricsJson } from '../../src/metrics/primary-metrics.js'
import { sumMetric } from '../../src/metrics/prometheus-text.js'

const metrics = new PrimaryMetrics({
  l2: () => ({ entries: 0, bytes: 0 }),
  workers: () => ({ configured: 2, listening: 2 }),
  state: () => ({ effective: 'ready', weightPercent: 100 })
})

/** What a worker reports: its handshakes so far. */
function report (pid: number, handshakes: number): { pid: number; metrics: MetricsJson } {
  return {
    pid,
    metrics: [{ name: 'tlsfleet_handshakes_total', help: 'h', type: 'counter', aggregator: 'sum', values: [{ labels: {}, value: handshakes }] }] as unknown as MetricsJson
  }
}

async function handshakes (collect: () => Promise<Array<{ pid: number; metrics: MetricsJson }>>): Promise<number> {
  // maxAgeMs 0: every page asks the workers.
  return sumMetric((await metrics.page(collect, 0)).body, 'tlsfleet_handshakes_total')
}

test('a worker that dies is counted once, from its last report, from then on', async () => {
  assert.equal(await handshakes(async () => [report(101, 10), report(102, 5)]), 15)
  metrics.workerExited(101)
  // The pool reports live workers only (a report sent by a worker that died meanwhile is dropped: report-round.test.ts).
  assert.equal(await handshakes(async () => [report(102, 6)]), 16, 'the dead worker\'s counts are in the page once (kept from its last report)')
  assert.equal(await handshakes(async () => [report(102, 7)]), 17, 'and they stay counted once')
})

test('a per-process limit (process_max_fds) is the largest of the node\'s processes, not their sum', async () => {
  const withLimit = (pid: number): { pid: number; metrics: MetricsJson } => ({
    pid,
    metrics: [{ name: 'process_max_fds', help: 'h', type: 'gauge', values: [{ labels: {}, value: 1e12 }] }] as unknown as MetricsJson
  })
  const page = await metrics.page(async () => [withLimit(201), withLimit(202)], 0)
  assert.equal(sumMetric(page.body, 'process_max_fds'), 1e12)
})
