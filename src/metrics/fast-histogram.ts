import type { Metric, MetricObjectWithValues, MetricValueWithName, Registry } from 'prom-client'

/** One labelled series: counts per bucket (not cumulative), sum and count. */
export class HistogramSeries {
  readonly buckets: number[]
  sum = 0
  count = 0

  constructor (private readonly bounds: readonly number[]) {
    this.buckets = bounds.map(() => 0)
  }

  observe (value: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > (bounds[i] as number)) i++
    if (i < bounds.length) this.buckets[i] = (this.buckets[i] as number) + 1
    this.sum += value
    this.count++
  }
}

/**
 * A histogram with one label, for the per-connection path: `series(value).observe(x)` is a short
 * bucket search and three additions. prom-client's own `observe` validates and hashes the labels
 * on every call, which the worker would pay once per handshake. It registers in a prom-client
 * Registry and answers `get()` exactly as prom-client's Histogram does (cumulative `_bucket`
 * series with `le` first, then `+Inf`, `_sum`, `_count`; aggregator `sum`), so /metrics and the
 * primary's cluster aggregation read it unchanged.
 */
export class FastHistogram<L extends string> {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly bySeries = new Map<string, HistogramSeries>()

  constructor (
    readonly name: string,
    readonly help: string,
    private readonly labelName: L,
    private readonly bounds: readonly number[],
    registry: Registry
  ) {
    // The registry only calls name, get() and reset(): the structural shape prom-client's
    // Histogram also has. Its type names the four built-in classes, hence the cast.
    registry.registerMetric(this as unknown as Metric)
  }

  /** The series for one label value (keep it: looking it up again is a Map read). */
  series (labelValue: string): HistogramSeries {
    let series = this.bySeries.get(labelValue)
    if (series === undefined) {
      series = new HistogramSeries(this.bounds)
      this.bySeries.set(labelValue, series)
    }
    return series
  }

  async get (): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const values: Array<MetricValueWithName<string>> = []
    for (const [labelValue, series] of this.bySeries) {
      let cumulative = 0
      this.bounds.forEach((bound, i) => {
        cumulative += series.buckets[i] as number
        values.push({ labels: { le: bound, [this.labelName]: labelValue }, value: cumulative, metricName: `${this.name}_bucket` })
      })
      values.push({ labels: { le: '+Inf', [this.labelName]: labelValue }, value: series.count, metricName: `${this.name}_bucket` })
      values.push({ labels: { [this.labelName]: labelValue }, value: series.sum, metricName: `${this.name}_sum` })
      values.push({ labels: { [this.labelName]: labelValue }, value: series.count, metricName: `${this.name}_count` })
    }
    // Plain data only (it crosses the IPC channel). prom-client's type says `type` is its
    // MetricType enum and asks for `collect`; what its Histogram really returns is this.
    const json = { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
    return json as unknown as MetricObjectWithValues<MetricValueWithName<string>>
  }

  reset (): void {
    for (const series of this.bySeries.values()) {
      series.buckets.fill(0)
      series.sum = 0
      series.count = 0
    }
  }
}
