/**
 * Stops asking a store that is down, slow or flapping, so a handshake never waits on it.
 *
 * - closed: every call goes through; `failureThreshold` failures in a row open it.
 * - open: calls are refused at once (the caller counts them as skipped) until the back-off
 *   has passed; then one call is let through as a probe (half-open).
 * - half-open: the probe's success closes it; its failure opens it again for twice as long,
 *   up to `maxBackoffMs`. Other calls are refused while the probe is out.
 *
 * `onChange` is called once per transition between "up" (closed) and "down" (open or
 * half-open), not for each probe, so a store that stays down logs one line.
 */
export type BreakerState = 'closed' | 'open' | 'half_open'

export interface BreakerOptions {
  failureThreshold: number
  initialBackoffMs: number
  maxBackoffMs: number
  now?: () => number
  onChange?: (up: boolean, detail: { backoffMs: number }) => void
}

export class CircuitBreaker {
  private stateNow: BreakerState = 'closed'
  private failures = 0
  private backoffMs: number
  private retryAt = 0
  private readonly now: () => number

  constructor (private readonly opts: BreakerOptions) {
    this.backoffMs = opts.initialBackoffMs
    this.now = opts.now ?? Date.now
  }

  get state (): BreakerState { return this.stateNow }

  /** May a call go out now? In open state past the back-off, this call becomes the probe. */
  allow (): boolean {
    if (this.stateNow === 'closed') return true
    if (this.stateNow === 'open' && this.now() >= this.retryAt) {
      this.stateNow = 'half_open'
      return true
    }
    return false
  }

  success (): void {
    this.failures = 0
    if (this.stateNow === 'closed') return
    this.stateNow = 'closed'
    this.backoffMs = this.opts.initialBackoffMs
    this.opts.onChange?.(true, { backoffMs: 0 })
  }

  failure (): void {
    if (this.stateNow === 'half_open') {
      this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs)
      this.trip()
      return
    }
    if (this.stateNow === 'open') return // a call that was already out when it opened
    if (++this.failures >= this.opts.failureThreshold) {
      this.trip()
      this.opts.onChange?.(false, { backoffMs: this.backoffMs })
    }
  }

  private trip (): void {
    this.stateNow = 'open'
    this.failures = 0
    this.retryAt = this.now() + this.backoffMs
  }
}
