import { performance } from 'node:perf_hooks'
import { SlotList } from './slot-list.js'

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

/**
 * Where an item sits in the sweep that holds it (-1: in none; start items at -1). An item is in
 * one sweep at a time (a forward moves from the connect sweep to the idle one).
 */
export interface InSweep { sweepSlot: number }

/** Something with a deadline (performance.now() ms), set by DeadlineSweep.add. */
export interface HasDeadline extends InSweep { deadline: number }

/** The items (a SlotList: no allocation per add or delete) and the interval that sweeps them: what both kinds of sweep share. */
abstract class Sweep<T extends InSweep> {
  protected readonly items = new SlotList<'sweepSlot', T>('sweepSlot')
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

  /**
   * Expires what is due (the interval calls it; tests call it with a clock). Removing the item
   * at `i` moves the last one there, which is visited next; an expiry that deletes others
   * (none does now: sockets close on a later tick) at worst has one visited twice.
   */
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
    for (let i = 0; i < this.items.size;) {
      const item = this.items.at(i)
      if (now < item.deadline) { i++; continue }
      this.items.delete(item)
      this.expire(item)
    }
  }
}

/** What IdleSweep keeps on an item: its activity count when last seen to move, and when. */
export interface Activity extends InSweep { activityCount: number; activeAt: number }

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
    for (let i = 0; i < this.items.size;) {
      const item = this.items.at(i)
      const count = this.count(item)
      if (count !== item.activityCount) {
        item.activityCount = count
        item.activeAt = now
      } else if (now - item.activeAt >= this.idleMs) {
        this.items.delete(item)
        this.expire(item)
        continue
      }
      i++
    }
  }
}
