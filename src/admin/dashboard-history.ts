import type { SampledWorker } from '../agent/load-sampler.js'

/** What happened during one sampling interval (deltas, not totals). */
export interface HistoryPoint {
  /** End of the interval, ms since the Unix epoch. */
  at: number
  /** Length of the interval in seconds (> 0). */
  seconds: number
  full: number
  resumed: number
  /** Lookups per cache level: `l1` (all workers), `l2` (the primary). */
  cache: Record<string, { hits: number; misses: number }>
  /** Sync datagrams by `direction:result` (e.g. `in:accepted`, `out:send_error`). */
  sync: Record<string, number>
}

/** Totals read at one moment: the workers' per-process counters and the primary's own. */
export interface CounterReading {
  at: number
  workers: ReadonlyArray<Pick<SampledWorker, 'pid' | 'handshakes' | 'l1'>>
  l2: { hits: number; misses: number }
  sync: Record<string, number>
}

/** Per-second rates over the kept history, one column per series (aligned on `t`). */
export interface HistorySeries {
  /** End of each interval, Unix seconds. */
  t: number[]
  full: number[]
  resumed: number[]
  syncIn: number[]
  syncRejected: number[]
  syncOut: number[]
  syncSendErrors: number[]
}

/** Sums over a recent window. */
export interface WindowTotals {
  seconds: number
  full: number
  resumed: number
  cache: Record<string, { hits: number; misses: number }>
  sync: Record<string, number>
}

interface WorkerTotals { full: number; resumed: number; hits: number; misses: number; seenAt: number }

/** How long a worker that stopped answering is remembered (a slow round must not reset it). */
const FORGET_WORKER_MS = 60_000

/** Results of incoming sync packets that are not a rejection. */
const NOT_REJECTED = new Set(['accepted', 'own'])

/**
 * The dashboard's short memory: one point per load sample (once a second), the last
 * `capacity` of them (10 minutes by default), so a browser that opens the page sees the last
 * minutes at once. Worker counters are differenced per process: a worker that misses a round,
 * dies or is replaced neither makes a spike nor a negative rate.
 */
export class DashboardHistory {
  private readonly points: HistoryPoint[] = []
  private readonly workers = new Map<string, WorkerTotals>()
  private last?: CounterReading

  constructor (readonly capacity = 600) {}

  record (reading: CounterReading): HistoryPoint | undefined {
    const previous = this.last
    const deltas = { full: 0, resumed: 0, hits: 0, misses: 0 }
    reading.workers.forEach((w, i) => {
      const key = w.pid !== undefined ? `pid:${w.pid}` : `index:${i}`
      const now: WorkerTotals = { full: w.handshakes.full, resumed: w.handshakes.resumed, hits: w.l1.hits, misses: w.l1.misses, seenAt: reading.at }
      // A worker seen for the first time started at zero, unless this is the very first reading.
      const before = this.workers.get(key) ?? (previous === undefined ? now : { full: 0, resumed: 0, hits: 0, misses: 0, seenAt: reading.at })
      deltas.full += Math.max(0, now.full - before.full)
      deltas.resumed += Math.max(0, now.resumed - before.resumed)
      deltas.hits += Math.max(0, now.hits - before.hits)
      deltas.misses += Math.max(0, now.misses - before.misses)
      this.workers.set(key, now)
    })
    for (const [key, w] of this.workers) if (reading.at - w.seenAt > FORGET_WORKER_MS) this.workers.delete(key)
    this.last = reading
    if (previous === undefined) return undefined
    const seconds = (reading.at - previous.at) / 1000
    if (seconds <= 0) return undefined
    const sync: Record<string, number> = {}
    for (const [key, value] of Object.entries(reading.sync)) sync[key] = Math.max(0, value - (previous.sync[key] ?? 0))
    const point: HistoryPoint = {
      at: reading.at,
      seconds,
      full: deltas.full,
      resumed: deltas.resumed,
      cache: {
        l1: { hits: deltas.hits, misses: deltas.misses },
        l2: { hits: Math.max(0, reading.l2.hits - previous.l2.hits), misses: Math.max(0, reading.l2.misses - previous.l2.misses) }
      },
      sync
    }
    this.points.push(point)
    if (this.points.length > this.capacity) this.points.splice(0, this.points.length - this.capacity)
    return point
  }

  get size (): number { return this.points.length }

  series (): HistorySeries {
    const rate = (value: number, p: HistoryPoint): number => Math.round((value / p.seconds) * 100) / 100
    const sum = (p: HistoryPoint, keep: (direction: string, result: string) => boolean): number =>
      Object.entries(p.sync).reduce((total, [key, value]) => {
        const [direction = '', result = ''] = key.split(':')
        return keep(direction, result) ? total + value : total
      }, 0)
    const out: HistorySeries = { t: [], full: [], resumed: [], syncIn: [], syncRejected: [], syncOut: [], syncSendErrors: [] }
    for (const p of this.points) {
      out.t.push(Math.round(p.at / 100) / 10)
      out.full.push(rate(p.full, p))
      out.resumed.push(rate(p.resumed, p))
      out.syncIn.push(rate(p.sync['in:accepted'] ?? 0, p))
      out.syncRejected.push(rate(sum(p, (d, r) => d === 'in' && !NOT_REJECTED.has(r)), p))
      out.syncOut.push(rate(p.sync['out:sent'] ?? 0, p))
      out.syncSendErrors.push(rate(p.sync['out:send_error'] ?? 0, p))
    }
    return out
  }

  /** Sums over the points that ended within the last `seconds` (as far back as the history goes). */
  window (seconds: number): WindowTotals {
    const newest = this.points[this.points.length - 1]
    const totals: WindowTotals = { seconds: 0, full: 0, resumed: 0, cache: {}, sync: {} }
    if (newest === undefined) return totals
    for (const p of this.points) {
      if (newest.at - p.at >= seconds * 1000) continue
      totals.seconds += p.seconds
      totals.full += p.full
      totals.resumed += p.resumed
      for (const [level, c] of Object.entries(p.cache)) {
        const t = totals.cache[level] ?? { hits: 0, misses: 0 }
        t.hits += c.hits
        t.misses += c.misses
        totals.cache[level] = t
      }
      for (const [key, value] of Object.entries(p.sync)) totals.sync[key] = (totals.sync[key] ?? 0) + value
    }
    totals.seconds = Math.round(totals.seconds * 10) / 10
    return totals
  }
}
