/**
 * Stops asking a store that is down, slow or flapping, so a handshake never waits on it.
 *
 * - closed: every call goes through; `failureThreshold` failures in a row open it.
 * - open: calls are refused at once (the caller counts them as skipped) until the back-off
 *   has passed; then one call is let through as a probe (half-open).
 * - half-open: the probe's success closes it; its failure opens it again for twice as long,
 *   up to `maxBackoffMs`. Other calls are refused while the probe is out. Reported as soon as
 *   the back-off has passed, before any call comes (`state`): the next call will be the probe.
 *
 * Each call is tied to the breaker's generation it was let through in (`allow()` returns it;
 * every open and every close starts a new one). An answer from an older generation is ignored:
 * a lookup already out when the breaker opened, answering late but within its timeout, must
 * not close the breaker behind the probe's back (nor count twice towards opening it).
 *
 * A store that answers the probe and then fails again is flapping, not back: the back-off
 * keeps doubling until the breaker has stayed closed for `stableMs`, and only then returns to
 * `initialBackoffMs`.
 *
 * `onChange` is called once per transition between "up" and "down": down as soon as the
 * breaker opens, up once it has stayed closed for `stableMs` (seen at the next call after
 * that). A store that stays down, or flaps, logs one line each way, not one per probe.
 */
export type BreakerState = 'closed' | 'open' | 'half_open'

/** A call let through by `allow()`: give it back to `success()` or `failure()`. */
export interface Admission { readonly generation: number }

export interface BreakerOptions {
  failureThreshold: number
  initialBackoffMs: number
  maxBackoffMs: number
  /** How long the breaker must stay closed before the store counts as back (back-off reset, `onChange(true)`); default `maxBackoffMs`. */
  stableMs?: number
  now?: () => number
  onChange?: (up: boolean, detail: { backoffMs: number }) => void
}

export class CircuitBreaker {
  private stateNow: BreakerState = 'closed'
  private generation = 0
  private failures = 0
  private backoffMs: number
  private retryAt = 0
  /** When it last closed; -Infinity: never opened, so stable from the start. */
  private closedAt = -Infinity
  /** What `onChange` last said (the store starts "up"). */
  private announcedUp = true
  private readonly now: () => number
  private readonly stableMs: number

  constructor (private readonly opts: BreakerOptions) {
    this.backoffMs = opts.initialBackoffMs
    this.now = opts.now ?? Date.now
    this.stableMs = opts.stableMs ?? opts.maxBackoffMs
  }

  /**
   * Past its back-off an open breaker reports `half_open` (the next call goes out as the probe)
   * without waiting for that call: on an idle node it would otherwise say `open` long after the
   * store came back. Only the report moves; nothing is sent until a call comes.
   */
  get state (): BreakerState {
    return this.stateNow === 'open' && this.now() >= this.retryAt ? 'half_open' : this.stateNow
  }

  /** May a call go out now? In open state past the back-off, this call becomes the probe. */
  allow (): Admission | undefined {
    this.settle()
    if (this.stateNow === 'closed') return { generation: this.generation }
    if (this.stateNow === 'open' && this.now() >= this.retryAt) {
      this.stateNow = 'half_open'
      return { generation: this.generation }
    }
    return undefined
  }

  success (call: Admission): void {
    if (call.generation !== this.generation) return // let through before the last open or close
    if (this.stateNow === 'half_open') {
      this.stateNow = 'closed'
      this.generation++
      this.closedAt = this.now()
    }
    this.failures = 0
    this.settle()
  }

  failure (call: Admission): void {
    if (call.generation !== this.generation) return
    this.settle()
    if (this.stateNow === 'half_open') {
      this.trip(true)
      return
    }
    if (this.stateNow === 'closed' && ++this.failures >= this.opts.failureThreshold) {
      // Closed for less than stableMs: the probe's success was a lull, the back-off keeps growing.
      this.trip(!this.announcedUp)
    }
  }

  /** Closed long enough: the store is back. */
  private settle (): void {
    if (this.stateNow !== 'closed' || this.announcedUp || this.now() - this.closedAt < this.stableMs) return
    this.announcedUp = true
    this.backoffMs = this.opts.initialBackoffMs
    this.opts.onChange?.(true, { backoffMs: 0 })
  }

  private trip (longer: boolean): void {
    if (longer) this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs)
    this.stateNow = 'open'
    this.generation++
    this.failures = 0
    this.retryAt = this.now() + this.backoffMs
    if (!this.announcedUp) return
    this.announcedUp = false
    this.opts.onChange?.(false, { backoffMs: this.backoffMs })
  }
}
