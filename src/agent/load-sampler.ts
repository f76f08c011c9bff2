import type { L1Stats } from '../node/messages.js'

/** What one worker answers to a report request (the subset the sampler reads). */
export interface SampledWorker {
  pid?: number
  l1: L1Stats
  eventLoopUtilization: number
  activeConnections: number
  /** Connections the worker admits at once (0 = no bound known). */
  connectionLimit?: number
  /** The worker's handshake counters (every report carries them, light or not). */
  handshakes: { full: number; resumed: number }
}

export interface LoadSample {
  at: Date
  /** Workers listening when the sample was asked. */
  listening: number
  workers: SampledWorker[]
  /**
   * Average over listening workers; one that did not answer in time counts as saturated (1).
   * Undefined when no worker gave a usable figure (a worker's first report covers its start-up).
   */
  eventLoopUtilization: number | undefined
  /** Since the node started: the answering workers' counts plus `retired`. */
  handshakes: { full: number; resumed: number }
  /** What workers that have exited had counted (their last report): totals must not drop when one dies. Absent: none. */
  retired?: RetiredCounts
  handshakesPerSecond: number
  connections: number
  /**
   * Connections the answering workers admit at once, summed (--max-connections, or what their
   * file-descriptor limits allow); undefined when one of them has no bound.
   */
  connectionLimit?: number
}

export interface RetiredCounts { full: number; resumed: number; hits: number; misses: number }

export const NONE_RETIRED: RetiredCounts = Object.freeze({ full: 0, resumed: 0, hits: 0, misses: 0 })

/** Pure: turn one round of worker reports into a sample, given the previous sample. */
export function makeSample (workers: SampledWorker[], listening: number, previous: LoadSample | undefined, at = new Date(), fresh: ReadonlySet<number> = new Set(), retired: RetiredCounts = NONE_RETIRED): LoadSample {
  const handshakes = { full: retired.full, resumed: retired.resumed }
  for (const w of workers) {
    handshakes.full += w.handshakes.full
    handshakes.resumed += w.handshakes.resumed
  }
  let perSecond = 0
  if (previous !== undefined) {
    const seconds = (at.getTime() - previous.at.getTime()) / 1000
    // A worker that died since its last report took what it counted meanwhile: never a negative rate.
    const delta = handshakes.full + handshakes.resumed - previous.handshakes.full - previous.handshakes.resumed
    if (seconds > 0 && delta > 0) perSecond = delta / seconds
  }
  const silent = Math.max(0, listening - workers.length)
  // A worker's first report measures since it started: module loading and context building
  // would read as load. Its figure counts from the second report on.
  const usable = workers.filter((w) => w.pid === undefined || !fresh.has(w.pid))
  const elu = usable.length + silent > 0
    ? (usable.reduce((sum, w) => sum + Math.min(1, Math.max(0, w.eventLoopUtilization)), 0) + silent) / (usable.length + silent)
    : undefined
  const limits = workers.map((w) => w.connectionLimit ?? 0)
  return {
    at,
    listening,
    workers,
    eventLoopUtilization: elu,
    handshakes,
    retired: { ...retired },
    handshakesPerSecond: perSecond,
    connections: workers.reduce((sum, w) => sum + w.activeConnections, 0),
    ...(limits.length > 0 && limits.every((l) => l > 0) ? { connectionLimit: limits.reduce((a, b) => a + b, 0) } : {})
  }
}

function countsOf (w: SampledWorker): RetiredCounts {
  return { full: w.handshakes.full, resumed: w.handshakes.resumed, hits: w.l1.hits, misses: w.l1.misses }
}

export interface LoadSamplerOptions {
  intervalMs: number
  /** Ask the workers; must resolve within `timeoutMs` with whatever answered, live workers only (a worker that exited is retired through workerExited). */
  collect: (timeoutMs: number) => Promise<SampledWorker[]>
  listening: () => number
  onSample: (sample: LoadSample) => void
  onError?: (err: Error) => void
}

/**
 * Samples the workers on a timer (never per agent request), so the agent and the admin API
 * answer from the latest sample at once, even when the workers are too busy to reply.
 * At most one round is in flight; a slow round delays the next one instead of piling up.
 */
export class LoadSampler {
  latest: LoadSample | undefined
  private seen = new Set<number>()
  /** Each live worker's counts in its last report, by pid: retired when it exits. */
  private readonly lastCounts = new Map<number, RetiredCounts>()
  private readonly retired: RetiredCounts = { full: 0, resumed: 0, hits: 0, misses: 0 }
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor (private readonly opts: LoadSamplerOptions) {}

  start (): void {
    this.stopped = false
    this.schedule(0)
  }

  stop (): void {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
  }

  /**
   * A worker process exited: what it had counted stays in the node's totals. `final`: what a
   * crashing worker sent as it went, fresher than its last answer.
   */
  workerExited (pid: number, final?: SampledWorker): void {
    const last = final !== undefined ? countsOf(final) : this.lastCounts.get(pid)
    if (last === undefined) return
    this.lastCounts.delete(pid)
    this.retired.full += last.full
    this.retired.resumed += last.resumed
    this.retired.hits += last.hits
    this.retired.misses += last.misses
  }

  /** One round now (also used by tests). */
  async sampleOnce (): Promise<LoadSample> {
    const listening = this.opts.listening()
    // Only live workers answer: the pool leaves out a worker that died during the round (ReportRound).
    const workers = listening > 0 ? await this.opts.collect(Math.max(100, Math.floor(this.opts.intervalMs * 0.8))) : []
    for (const w of workers) {
      if (w.pid !== undefined) this.lastCounts.set(w.pid, countsOf(w))
    }
    const fresh = new Set(workers.flatMap((w) => w.pid !== undefined && !this.seen.has(w.pid) ? [w.pid] : []))
    // Remember only live workers, so the set does not grow with every restart.
    this.seen = new Set(workers.flatMap((w) => w.pid !== undefined ? [w.pid] : []))
    const sample = makeSample(workers, listening, this.latest, new Date(), fresh, this.retired)
    this.latest = sample
    this.opts.onSample(sample)
    return sample
  }

  private schedule (delay: number): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      this.sampleOnce().catch((err: unknown) => this.opts.onError?.(err as Error)).finally(() => this.schedule(this.opts.intervalMs))
    }, delay)
    this.timer.unref()
  }
}
