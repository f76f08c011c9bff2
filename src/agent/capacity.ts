/**
 * Turns worker load samples into the weight percent the agent reports to HAProxy.
 *
 * spare = 1 - max(event-loop utilization, handshakes/s ÷ max handshakes/s, connections ÷ the
 * connections admitted), smoothed with an EWMA. The reported value is quantized and moves only when the smoothed value has moved by
 * at least the hysteresis band: every weight change reshuffles HAProxy's round robin, so a
 * noisy load must not make the weight flap. The price: after a change the reported value may
 * rest up to (hysteresis - quantum) points away from the smoothed one. Reaching the top (100)
 * or the floor is always reported, so an idle node gets exactly its full weight back.
 *
 * The share of the node's workers that serve scales the reported weight afterwards, at once
 * (workerShareWeight): a lost worker is a known step in capacity, not noise to smooth.
 */

export interface CapacityOptions {
  /** EWMA factor for new samples, 0 < alpha <= 1 (default 0.3). */
  alpha?: number
  /** Minimum move, in percent points, before the reported weight changes (default 10). */
  hysteresisPercent?: number
  /** Floor while the node is up, so a loaded node still gets a trickle (default 10). */
  minPercent?: number
  /** Reported values are multiples of this (default 5). */
  quantumPercent?: number
}

export interface CapacitySample {
  /** 0..1, averaged across workers. */
  eventLoopUtilization: number
  handshakesPerSecond: number
  /** Handshake rate at which the node counts as full; absent or 0 ignores handshakes. */
  maxHandshakesPerSecond?: number
  /** 0..1: connections open over those the node admits; absent when it has no bound. */
  connectionFill?: number
}

function clamp (value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value))
}

function checkRange (name: string, value: number, low: number, high: number): number {
  if (!Number.isFinite(value) || value < low || value > high) throw new Error(`capacity option ${name} must be a number from ${low} to ${high}, got ${value}`)
  return value
}

/**
 * Pure: the weight of a node of which only `share` (0..1) of its configured workers serve,
 * given the weight `percent` its serving workers' load earns. A node with half its workers has
 * half its capacity, whatever their load: scaled, put back on the `quantum` grid, and kept at
 * or above `floor` (a node that serves at all gets a trickle, as under load).
 */
export function workerShareWeight (percent: number, share: number, quantum: number, floor: number): number {
  const s = Number.isFinite(share) ? clamp(share, 0, 1) : 1
  if (s >= 1) return percent
  const scaled = Math.round((percent * s) / quantum) * quantum
  return clamp(scaled, Math.min(Math.ceil(floor / quantum) * quantum, 100), 100)
}

export class CapacityEstimator {
  private readonly alpha: number
  private readonly hysteresis: number
  private readonly minPercent: number
  private readonly quantum: number
  private smoothed: number | undefined
  private reported = 100

  constructor (opts: CapacityOptions = {}) {
    this.alpha = checkRange('alpha', opts.alpha ?? 0.3, Number.EPSILON, 1)
    this.hysteresis = checkRange('hysteresisPercent', opts.hysteresisPercent ?? 10, 0, 100)
    this.minPercent = checkRange('minPercent', opts.minPercent ?? 10, 1, 100)
    this.quantum = checkRange('quantumPercent', opts.quantumPercent ?? 5, 1, 100)
  }

  update (sample: CapacitySample): void {
    const { eventLoopUtilization: elu, handshakesPerSecond: hs, maxHandshakesPerSecond: max, connectionFill: fill } = sample
    if (!Number.isFinite(elu)) throw new Error(`eventLoopUtilization must be a finite number, got ${elu}`)
    if (!Number.isFinite(hs) || hs < 0) throw new Error(`handshakesPerSecond must be a finite number >= 0, got ${hs}`)
    if (max !== undefined && (!Number.isFinite(max) || max < 0)) throw new Error(`maxHandshakesPerSecond must be a finite number >= 0, got ${max}`)
    if (fill !== undefined && (!Number.isFinite(fill) || fill < 0)) throw new Error(`connectionFill must be a finite number >= 0, got ${fill}`)
    const handshakeLoad = max !== undefined && max > 0 ? hs / max : 0
    const spare = 1 - clamp(Math.max(elu, handshakeLoad, fill ?? 0), 0, 1)
    this.smoothed = this.smoothed === undefined ? spare : this.alpha * spare + (1 - this.alpha) * this.smoothed

    const floor = Math.ceil(this.minPercent / this.quantum) * this.quantum
    const candidate = clamp(Math.round((this.smoothed * 100) / this.quantum) * this.quantum, Math.min(floor, 100), 100)
    const atBound = candidate === 100 || candidate === Math.min(floor, 100)
    if (Math.abs(candidate - this.reported) >= this.hysteresis || (atBound && candidate !== this.reported)) this.reported = candidate
  }

  /**
   * Current weight percent to report (100 before the first sample), for a node of which
   * `workerShare` (0..1) of the configured workers serve: see workerShareWeight.
   */
  weightPercent (workerShare = 1): number {
    return workerShareWeight(this.reported, workerShare, this.quantum, this.minPercent)
  }

  /** Smoothed spare capacity 0..1 (for metrics), undefined before the first sample. */
  spareCapacity (): number | undefined {
    return this.smoothed
  }
}
