import { performance } from 'node:perf_hooks'

/**
 * Timeouts for many short-lived connections, checked by one interval per kind instead of a
 * Node timer per connection. A worker's handshake, backend-connect and idle timeouts each cost
 * a `Timeout` object, a timer-list insert and remove, and (for socket timeouts) a timer refresh
 * on every chunk read or written; counted under callgrind the three were ~23k instructions of a
 * resumed TLS 1.2 connection's ~890k (docs/benchmarks.md). Here a connection costs a set
 * insert and delete, and fires up to one period late: periods are a tenth of the timeout.
 */

/** How often a sweep runs for a timeout: a tenth of it, between `minMs` and one second. */
export function sweepPeriodMs (timeoutMs: number, minMs: number): number {
  return Math.min(1000, Math.max(minMs, Math.round(timeoutMs / 10)))
}

/** Something with a deadline (performance.now() ms), set by DeadlineSweep.add. */
export interface HasDeadline { deadline: number }

/** A set of items and the interval that sweeps it: what both kinds of sweep share. */
abstract class Sweep<T> {
  protected readonly items = new Set<T>()
  private readonly timer: NodeJS.Timeout

  constructor (periodMs: number) {
    this.timer = setInterval(() => this.sweep(performance.now()), periodMs)
    this.timer.unref()
  }

  /** Whether the item was there. */
  delete (item: T): boolean {
    return this.items.delete(item)
  }

  get size (): number { return this.items.size }

  /** Expires what is due (the interval calls it; tests call it with a clock). Deleting the entry being visited is safe in a Set's for..of. */
  abstract sweep (now: number): void

  close (): void { clearInterval(this.timer) }
}

/** Items that expire at a fixed deadline unless deleted first (a handshake, a backend connect). */
export class DeadlineSweep<T extends HasDeadline> extends Sweep<T> {
  constructor (periodMs: number, private readonly expire: (item: T) => void) {
    super(periodMs)
  }

  add (item: T, timeoutMs: number, now = performance.now()): void {
    item.deadline = now + timeoutMs
    this.items.add(item)
  }

  sweep (now: number): void {
    for (const item of this.items) {
      if (now < item.deadline) continue
      this.items.delete(item)
      this.expire(item)
    }
  }
}

/** What IdleSweep keeps on an item: its activity count when last seen to move, and when. */
export interface Activity { activityCount: number; activeAt: number }

/**
 * Items that expire after `idleMs` without activity. Activity is read, not reported: the sweep
 * compares a count the item already keeps (a socket's bytes read), so the data path pays
 * nothing per chunk. An item is expired between `idleMs` and `idleMs` + two periods after it
 * last moved.
 */
export class IdleSweep<T extends Activity> extends Sweep<T> {
  constructor (periodMs: number, private readonly idleMs: number, private readonly count: (item: T) => number, private readonly expire: (item: T) => void) {
    super(periodMs)
  }

  add (item: T, now = performance.now()): void {
    item.activityCount = this.count(item)
    item.activeAt = now
    this.items.add(item)
  }

  sweep (now: number): void {
    for (const item of this.items) {
      const count = this.count(item)
      if (count !== item.activityCount) {
        item.activityCount = count
        item.activeAt = now
      } else if (now - item.activeAt >= this.idleMs) {
        this.items.delete(item)
        this.expire(item)
      }
    }
  }
}
