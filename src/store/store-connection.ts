/**
 * Whether the client holds a ready connection to the store, from the client library's events
 * (ready; close, end), and the log lines that say so: "connected" when a store that was
 * unreachable at start, or lost since, comes up; "connection lost" when it goes.
 *
 * The breakers say whether calls work; they only learn it from calls, so an idle node's
 * breakers say nothing of a store that went away or came back. This does, at once.
 *
 * A connection that flaps (up, down, up within moments) logs one line each way per `holdMs`,
 * not one per reconnection: a line that comes within `holdMs` of the previous line of its kind
 * is held back, and said at the end of that time only if the state still differs from what the
 * log last said. The log therefore always ends on the true state.
 */
export interface ConnectionAnnouncer {
  /** The store answers again (or for the first time after an unreachable start). */
  up: () => void
  /** The connection was lost (or, held back, is still lost). */
  down: () => void
}

export class StoreConnection {
  private connectedNow = false
  /** What the log last said; undefined until the start line (start-store.ts logs it). */
  private announced: boolean | undefined
  private readonly lastLineAt = new Map<boolean, number>()
  private timer: NodeJS.Timeout | undefined
  private closed = false

  constructor (private readonly opts: { holdMs: number; announce: ConnectionAnnouncer; now?: () => number }) {}

  get connected (): boolean { return this.connectedNow }

  /**
   * The start line was logged: the store was reachable then, or not. It does not hold back the
   * next line of its kind: a store lost moments after the start is news, not a flap.
   */
  started (connected: boolean): void {
    this.announced = connected
    this.reconcile()
  }

  /** The client library's 'ready'. */
  ready (): void { this.connectedNow = true; this.reconcile() }

  /** The client library's 'close' or 'end'. */
  lost (): void { this.connectedNow = false; this.reconcile() }

  /** The node stops (or the store was refused): no more lines, whatever the client does now. */
  close (): void {
    this.closed = true
    clearTimeout(this.timer)
  }

  private reconcile (): void {
    if (this.closed || this.announced === undefined || this.announced === this.connectedNow || this.timer !== undefined) return
    const wait = (this.lastLineAt.get(this.connectedNow) ?? -Infinity) + this.opts.holdMs - this.now()
    if (wait > 0) {
      // Same kind of line too recently: say it later if it still holds (unref: never keeps the node up).
      this.timer = setTimeout(() => { this.timer = undefined; this.reconcile() }, wait)
      this.timer.unref()
      return
    }
    this.announced = this.connectedNow
    this.lastLineAt.set(this.connectedNow, this.now())
    if (this.connectedNow) this.opts.announce.up()
    else this.opts.announce.down()
  }

  private now (): number { return (this.opts.now ?? Date.now)() }
}
