import type { MetricObjectWithValues, MetricValue, MetricValueWithName } from 'prom-client'

type MetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>

/** How far below the last value a float may come back and still be taken for rounding. */
const ROUNDING = 1e-9

/**
 * Keeps the node's counters and histograms from stepping back by float rounding. A dead
 * worker's counts are added into the totals in another order than before, so a float sum
 * (`nodejs_gc_duration_seconds_sum`) can come out a last digit lower than the page served a
 * second ago, and Prometheus reads any step down as a counter reset (a spike in `rate()`).
 * Such a value is served as the last one; a larger drop is left as it is, so a real bug shows.
 */
export class MonotonicSums {
  private readonly last = new Map<string, number>()

  /** Adjusts `json` in place and remembers what it serves. */
  hold (json: MetricsJson): MetricsJson {
    for (const metric of json) {
      const type = String(metric.type)
      if (type !== 'counter' && type !== 'histogram') continue
      // Histogram samples name their series (_bucket, _sum, _count); counters' do not.
      for (const sample of metric.values as Array<MetricValueWithName<string>>) {
        const key = seriesKey(sample.metricName ?? metric.name, sample.labels)
        const before = this.last.get(key)
        if (before !== undefined && sample.value < before && before - sample.value <= Math.abs(before) * ROUNDING) sample.value = before
        this.last.set(key, sample.value)
      }
    }
    return json
  }
}

function seriesKey (name: string, labels: MetricValue<string>['labels']): string {
  const keys = Object.keys(labels)
  if (keys.length === 0) return name
  keys.sort()
  return `${name}{${keys.map((k) => `${k}=${String(labels[k])}`).join(',')}}`
}
