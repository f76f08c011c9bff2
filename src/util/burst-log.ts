/**
 * Logging for events that come in floods (refused connections, descriptors exhausted): the
 * first event of a burst is logged at once, the end of the burst once it has been quiet for
 * `quietMs`, with how many there were. A flood of a million refusals makes two lines.
 */
export class BurstLog<Fields> {
  private count = 0
  private counted = 0
  private startedAt = 0
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly opts: {
    quietMs: number
    onStart: (fields: Fields) => void
    onEnd: (events: number, seconds: number) => void
  }) {}

  note (fields: Fields): void {
    this.count++
    if (this.timer !== undefined) return
    this.startedAt = Date.now()
    this.counted = this.count
    this.opts.onStart(fields)
    this.timer = setInterval(() => this.check(), this.opts.quietMs)
    this.timer.unref()
  }

  get active (): boolean { return this.timer !== undefined }

  /** Ends the burst now (on shutdown), logging its end. */
  flush (): void {
    if (this.timer === undefined) return
    clearInterval(this.timer)
    this.timer = undefined
    this.opts.onEnd(this.count, (Date.now() - this.startedAt) / 1000)
    this.count = 0
  }

  private check (): void {
    if (this.count !== this.counted) {
      this.counted = this.count
      return
    }
    this.flush()
  }
}

/**
 * A BurstLog per kind (a reason, a bound), made at its first event: a burst of one kind must
 * not hide the start of another's.
 */
export class BurstLogs<Fields> {
  private readonly bursts = new Map<string, BurstLog<Fields>>()

  constructor (private readonly opts: {
    quietMs: number
    onStart: (kind: string, fields: Fields) => void
    onEnd: (kind: string, events: number, seconds: number) => void
  }) {}

  note (kind: string, fields: Fields): void {
    let burst = this.bursts.get(kind)
    if (burst === undefined) {
      burst = new BurstLog({
        quietMs: this.opts.quietMs,
        onStart: (first) => this.opts.onStart(kind, first),
        onEnd: (events, seconds) => this.opts.onEnd(kind, events, seconds)
      })
      this.bursts.set(kind, burst)
    }
    burst.note(fields)
  }

  /** Ends every burst now (on shutdown), logging their ends. */
  flush (): void {
    for (const burst of this.bursts.values()) burst.flush()
  }
}
