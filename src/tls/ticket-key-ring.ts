import { TICKET_KEY_LENGTH, type TicketKeyGeneration } from './ticket-keys.js'

/**
 * The ticket keys a worker holds, as the primary sends them: never the ticket secret, only the
 * keys of the epochs acceptable now (ticket-keys.ts: next, current, previous ones while within
 * the session lifetime), so a memory disclosure in a worker opens the tickets of that window and
 * no other period's.
 *
 * One run per ticket secret, current farm secret first (older ones during a change-over). A run
 * is a contiguous range of epochs, its keys packed back to back in Node `ticketKeys` layout,
 * each 48 bytes name(16) = tag(8) | epoch u64 BE(8), HMAC secret(16), AES key(16):
 */
export interface TicketKeyRun {
  /** The farm tag (8 bytes, public: the start of every ticket name of this secret). */
  tag: Buffer
  /** Epoch of the first key in `keys`. */
  from: number
  /** 48 bytes per epoch, `from` upwards; may be empty. */
  keys: Buffer
}

/**
 * What the primary sends a worker, in its settings at start and at each rotation. `runs` names
 * every secret the worker is to hold, in order (the first one issues); keys already held are
 * kept, so a push carries only the new epochs, and a secret not named is dropped.
 */
export interface TicketKeySet { runs: TicketKeyRun[] }

export interface TicketKeyRingOptions {
  rotationSeconds: number
  /** How long a ticket may be used after it is issued: --session-timeout. */
  lifetimeSeconds: number
}

/** A key the ring holds, found by a ticket's name. */
export interface RingLookup {
  /** Which secret: its index in the last set received (0 issues). */
  schedule: number
  generation: TicketKeyGeneration
  /** ms since the Unix epoch until which tickets under it stay acceptable. */
  until: number
}

/** The key new tickets are issued under. */
export interface IssuingKey extends RingLookup {
  /** The ring lacks the current epoch (the primary is late): this is the newest it has. */
  fallback: boolean
}

export type RingUpdate = { ok: true; tagsChanged: boolean; added: number } | { ok: false; reason: string }

const TAG_LENGTH = 8
const NAME_LENGTH = 16
/** More secrets than a change-over ever has at once (current and the previous one or two). */
const MAX_RUNS = 8

/**
 * One secret's keys by epoch, each a 48-byte view into the bytes the primary sent: the
 * generation object (and its name view) is made on lookup, which the pool caches per name, so
 * 8642 held keys (86400 / 10) cost one view each, not two objects.
 */
interface Held { tag: Buffer; byEpoch: Map<number, Buffer> }

function generationOf (epoch: number, keys: Buffer): TicketKeyGeneration {
  return { epoch, keys, name: keys.subarray(0, NAME_LENGTH) }
}

/**
 * Keys by secret and epoch, a name's lookup O(1) as with the schedule the primary keeps:
 * acceptability is computed from the epoch, rotation and lifetime alone. Keys no ticket can be
 * valid under any more are dropped and their bytes zeroed; the newest key of the issuing secret
 * is kept regardless, so a worker whose primary is late keeps issuing tickets.
 */
export class TicketKeyRing {
  readonly #rotationMs: number
  readonly #lifetimeMs: number
  #held: Held[] = []

  constructor (opts: TicketKeyRingOptions) {
    if (!Number.isSafeInteger(opts.rotationSeconds) || opts.rotationSeconds <= 0) throw new RangeError(`rotationSeconds must be a positive integer, got ${String(opts.rotationSeconds)}`)
    if (!Number.isSafeInteger(opts.lifetimeSeconds) || opts.lifetimeSeconds < 0) throw new RangeError(`lifetimeSeconds must be a non-negative integer, got ${String(opts.lifetimeSeconds)}`)
    this.#rotationMs = opts.rotationSeconds * 1000
    this.#lifetimeMs = opts.lifetimeSeconds * 1000
  }

  /** The tags of the secrets held, issuing one first. */
  get tags (): Buffer[] { return this.#held.map((h) => h.tag) }

  /** Keys held, all secrets together. */
  get size (): number { return this.#held.reduce((n, h) => n + h.byEpoch.size, 0) }

  /** Whether the ring holds the key of `epoch` for secret `schedule`. */
  has (schedule: number, epoch: number): boolean { return this.#held[schedule]?.byEpoch.has(epoch) ?? false }

  epochAt (ms: number): number { return Math.max(0, Math.floor(ms / this.#rotationMs)) }

  /** As TicketKeySchedule.isAcceptable: current, next, earlier ones while a ticket of their end lives. */
  isAcceptable (epoch: number, nowMs: number): boolean {
    const current = this.epochAt(nowMs)
    if (epoch === current || epoch === current + 1) return true
    if (epoch > current) return false
    return nowMs < this.acceptableUntilMs(epoch)
  }

  acceptableUntilMs (epoch: number): number { return (epoch + 1) * this.#rotationMs + this.#lifetimeMs }

  /**
   * Take a set from the primary: checked whole first, so a malformed one changes nothing. Keys
   * already expired or already held are not kept (their bytes in `set` are zeroed); then the
   * ring is pruned.
   */
  update (set: unknown, nowMs: number): RingUpdate {
    const problem = this.#check(set)
    if (problem !== undefined) return { ok: false, reason: problem }
    const runs = (set as TicketKeySet).runs
    const previous = this.#held
    const tagsChanged = runs.length !== previous.length || runs.some((run, i) => !run.tag.equals(previous[i]?.tag ?? Buffer.alloc(0)))
    const next: Held[] = runs.map((run) => previous.find((h) => h.tag.equals(run.tag)) ?? { tag: Buffer.from(run.tag), byEpoch: new Map() })
    for (const gone of previous) if (!next.includes(gone)) zeroAll(gone)
    this.#held = next
    let added = 0
    runs.forEach((run, i) => {
      const held = next[i] as Held
      for (let at = 0; at < run.keys.length; at += TICKET_KEY_LENGTH) {
        const epoch = run.from + at / TICKET_KEY_LENGTH
        // A view, not a copy: zeroing it on drop reaches the bytes the message brought.
        const keys = run.keys.subarray(at, at + TICKET_KEY_LENGTH)
        // Held already, expired, or beyond the next epoch (the primary shares this clock): not kept.
        if (held.byEpoch.has(epoch) || nowMs >= this.acceptableUntilMs(epoch) || epoch > this.epochAt(nowMs) + 1) {
          keys.fill(0)
          continue
        }
        held.byEpoch.set(epoch, keys)
        added++
      }
    })
    this.prune(nowMs)
    return { ok: true, tagsChanged, added }
  }

  /** The key of a ticket name if the ring holds it and it is acceptable now. */
  byName (name: Buffer, nowMs: number): RingLookup | undefined {
    if (name.length !== NAME_LENGTH) return undefined
    for (let schedule = 0; schedule < this.#held.length; schedule++) {
      const held = this.#held[schedule] as Held
      if (name.compare(held.tag, 0, TAG_LENGTH, 0, TAG_LENGTH) !== 0) continue
      const epoch = name.readUInt32BE(8) * 2 ** 32 + name.readUInt32BE(12)
      const keys = held.byEpoch.get(epoch)
      if (keys === undefined || !this.isAcceptable(epoch, nowMs)) return undefined
      return { schedule, generation: generationOf(epoch, keys), until: this.acceptableUntilMs(epoch) }
    }
    return undefined
  }

  /**
   * The key to issue under now: the current epoch of the first secret; when the ring lacks it
   * (the primary's push is late), the newest older one, else the oldest it has. Undefined only
   * when the first secret has no key at all. `until` is the end of the current epoch.
   */
  issuing (nowMs: number): IssuingKey | undefined {
    const held = this.#held[0]
    if (held === undefined) return undefined
    const current = this.epochAt(nowMs)
    const until = (current + 1) * this.#rotationMs
    const exact = held.byEpoch.get(current)
    if (exact !== undefined) return { schedule: 0, generation: generationOf(current, exact), until, fallback: false }
    // The newest below the current epoch (what a late primary leaves), else the oldest above it.
    let older: number | undefined
    let later: number | undefined
    for (const epoch of held.byEpoch.keys()) {
      if (epoch < current) {
        if (older === undefined || epoch > older) older = epoch
      } else if (later === undefined || epoch < later) later = epoch
    }
    const best = older ?? later
    const keys = best === undefined ? undefined : held.byEpoch.get(best)
    return best === undefined || keys === undefined ? undefined : { schedule: 0, generation: generationOf(best, keys), until, fallback: true }
  }

  /** Drop (and zero) keys no ticket can be valid under any more; the issuing secret's newest stays. */
  prune (nowMs: number): number {
    let dropped = 0
    this.#held.forEach((held, schedule) => {
      const newest = schedule === 0 ? Math.max(...held.byEpoch.keys()) : Number.NaN
      for (const [epoch, keys] of held.byEpoch) {
        if (nowMs < this.acceptableUntilMs(epoch) || epoch === newest) continue
        keys.fill(0)
        held.byEpoch.delete(epoch)
        dropped++
      }
    })
    return dropped
  }

  /** Everything zeroed and forgotten. */
  clear (): void {
    for (const held of this.#held) zeroAll(held)
    this.#held = []
  }

  /** Why `set` is refused, or undefined. The whole set is checked before any of it is used. */
  #check (set: unknown): string | undefined {
    if (typeof set !== 'object' || set === null) return 'not an object'
    const runs = (set as { runs?: unknown }).runs
    if (!Array.isArray(runs)) return 'no runs array'
    if (runs.length > MAX_RUNS) return `${runs.length} runs, at most ${MAX_RUNS}`
    const tags: Buffer[] = []
    for (const [i, run] of (runs as unknown[]).entries()) {
      const problem = checkRun(run)
      if (problem !== undefined) return `run ${i}: ${problem}`
      const { tag } = run as TicketKeyRun
      if (tags.some((t) => t.equals(tag))) return `run ${i}: the same tag as an earlier run`
      tags.push(tag)
    }
    return undefined
  }
}

function checkRun (run: unknown): string | undefined {
  if (typeof run !== 'object' || run === null) return 'not an object'
  const { tag, from, keys } = run as { tag?: unknown; from?: unknown; keys?: unknown }
  if (!Buffer.isBuffer(tag) || tag.length !== TAG_LENGTH) return `tag must be ${TAG_LENGTH} bytes`
  if (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 0) return `from must be a non-negative integer epoch, got ${String(from)}`
  if (!Buffer.isBuffer(keys) || keys.length % TICKET_KEY_LENGTH !== 0) return `keys must be a multiple of ${TICKET_KEY_LENGTH} bytes`
  if (!Number.isSafeInteger(from + keys.length / TICKET_KEY_LENGTH)) return 'epochs beyond the safe integer range'
  for (let at = 0; at < keys.length; at += TICKET_KEY_LENGTH) {
    const epoch = from + at / TICKET_KEY_LENGTH
    if (keys.compare(tag, 0, TAG_LENGTH, at, at + TAG_LENGTH) !== 0) return `key of epoch ${epoch}: its name does not start with the run's tag`
    if (keys.readUInt32BE(at + 8) * 2 ** 32 + keys.readUInt32BE(at + 12) !== epoch) return `key at epoch ${epoch}: its name names another epoch`
  }
  return undefined
}

function zeroAll (held: Held): void {
  for (const keys of held.byEpoch.values()) keys.fill(0)
  held.byEpoch.clear()
}
