import { TICKET_KEY_LENGTH, TicketKeySchedule } from '../tls/ticket-keys.js'
import type { TicketKeyRun, TicketKeySet } from '../tls/ticket-key-ring.js'

export interface TicketKeyFeedOptions {
  /** Ticket secrets, current first (older farm secrets during a change-over). */
  secrets: Buffer[]
  rotationSeconds: number
  lifetimeSeconds: number
  /** Sends the keys that became acceptable to every worker (at each rotation). */
  push: (set: TicketKeySet) => void
  /** clock in milliseconds; defaults to Date.now */
  now?: () => number
}

/**
 * The primary's side of the workers' ticket keys: it alone holds the ticket secrets, and hands
 * the workers the keys of the acceptable epochs only (ticket-key-ring.ts says why). A worker gets
 * every acceptable key in its settings when it starts (a replacement too); at each rotation the
 * workers get the keys that became acceptable: the new next epoch, with the current one again
 * (a worker that missed a push heals at the next), and any epochs a late timer skipped.
 */
export class TicketKeyFeed {
  private schedules: TicketKeySchedule[]
  /** The secrets of `schedules`, in order: a secret kept across setSecrets keeps its schedule. */
  private secrets: Buffer[]
  private readonly now: () => number
  /**
   * Keys by epoch per secret, kept while acceptable: with a long --session-timeout over a short
   * --ticket-rotation thousands are (8642 at 86400 / 10), and a replacement worker's settings
   * must not cost one HKDF each again (the schedule's own cache holds 64).
   */
  private derived: Array<Map<number, Buffer>>
  /** The newest epoch the workers were sent. */
  private sentUpTo = -1
  private timer?: NodeJS.Timeout

  constructor (private readonly opts: TicketKeyFeedOptions) {
    this.now = opts.now ?? Date.now
    this.secrets = opts.secrets.map((secret) => Buffer.from(secret))
    this.schedules = opts.secrets.map((secret) => this.scheduleOf(secret))
    this.derived = this.schedules.map(() => new Map())
  }

  /**
   * SIGHUP read other farm secrets: the workers get every acceptable key of each secret now
   * listed, the first one issuing (a secret still listed keeps its keys and its cache; one no
   * longer listed is dropped by the workers, as a set not naming it says).
   */
  setSecrets (secrets: Buffer[]): void {
    const previous = this.secrets
    const schedules = this.schedules
    const derived = this.derived
    const kept = secrets.map((secret) => previous.findIndex((p) => p.equals(secret)))
    this.schedules = secrets.map((secret, i) => schedules[kept[i] as number] ?? this.scheduleOf(secret))
    this.derived = secrets.map((_, i) => derived[kept[i] as number] ?? new Map())
    this.secrets = secrets.map((secret) => Buffer.from(secret))
    this.opts.push(this.all())
  }

  private scheduleOf (secret: Buffer): TicketKeySchedule {
    return new TicketKeySchedule({ secret, rotationSeconds: this.opts.rotationSeconds, lifetimeSeconds: this.opts.lifetimeSeconds, now: this.now })
  }

  /** Every key acceptable now, for a worker's settings (empty runs: tickets off). */
  all (): TicketKeySet {
    const now = this.now()
    const [first] = this.schedules
    if (first === undefined) return { runs: [] }
    return this.runs(this.oldestAcceptable(first, now), first.epochAt(now) + 1)
  }

  /** Push at every rotation from now on. */
  start (): void {
    if (this.schedules.length === 0) return
    this.sentUpTo = Math.max(this.sentUpTo, (this.schedules[0] as TicketKeySchedule).epochAt(this.now()) + 1)
    this.schedule()
  }

  stop (): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }

  /** The rotation's push: the current and next epochs, and any the timer came too late for. */
  pushNow (): void {
    const first = this.schedules[0]
    if (first === undefined) return
    const now = this.now()
    const current = first.epochAt(now)
    const from = Math.max(Math.min(this.sentUpTo + 1, current), this.oldestAcceptable(first, now))
    this.opts.push(this.runs(from, current + 1))
    this.sentUpTo = current + 1
  }

  /** The oldest epoch whose tickets may still be valid at `now` (the current one at most). */
  private oldestAcceptable (schedule: TicketKeySchedule, now: number): number {
    const current = schedule.epochAt(now)
    // Tickets of epoch e live until (e + 1) * rotation + lifetime: start just below, step up.
    let epoch = Math.max(0, Math.min(current, schedule.epochAt(now - this.opts.lifetimeSeconds * 1000) - 2))
    while (epoch < current && !schedule.isAcceptable(epoch, now)) epoch++
    return epoch
  }

  private schedule (): void {
    const first = this.schedules[0] as TicketKeySchedule
    // Just past the boundary: the epoch has changed when the timer reads the clock.
    this.timer = setTimeout(() => {
      this.pushNow()
      this.schedule()
    }, first.msUntilNextRotation() + 5)
    this.timer.unref()
  }

  /** Each secret's keys for epochs from..to, packed; the cache keeps the acceptable ones only. */
  private runs (from: number, to: number): TicketKeySet {
    const runs = this.schedules.map((schedule, i): TicketKeyRun => {
      const cache = this.derived[i] as Map<number, Buffer>
      for (const epoch of cache.keys()) if (!schedule.isAcceptable(epoch)) cache.delete(epoch)
      const keys = Buffer.alloc((to - from + 1) * TICKET_KEY_LENGTH)
      for (let epoch = from; epoch <= to; epoch++) {
        let key = cache.get(epoch)
        if (key === undefined) cache.set(epoch, key = schedule.generation(epoch).keys)
        key.copy(keys, (epoch - from) * TICKET_KEY_LENGTH)
      }
      return { tag: schedule.tag, from, keys }
    })
    return { runs }
  }
}
