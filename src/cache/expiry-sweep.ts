import type { SessionStore } from './session-store.js'

/** Entries looked at in one go (~0.6 µs each on the 2-core test machine): about a millisecond's pause. */
const CHUNK = 2000
/** A whole walk within this long (or the session lifetime, when shorter)... */
const WALK_SECONDS = 60
/** ...but no more than this many entries looked at a second (~3% of a core), for stores of millions. */
const MAX_PER_SECOND = 50_000

/**
 * Drops the expired entries of a store (L2 in the primary, L1 in a worker) that nobody asks
 * for again: a get drops an expired entry, but nothing else did, so they held memory and
 * counted in /v1/cache and tlsfleet_session_cache_entries until the LRU pushed them out. Every
 * period it looks at the store's share of a walk, in chunks with I/O between them.
 */
export class ExpirySweep {
  private readonly timer: NodeJS.Timeout
  private chunk: NodeJS.Immediate | undefined

  constructor (private readonly store: SessionStore, private readonly periodMs = 1000) {
    this.timer = setInterval(() => this.sweep(this.quota()), periodMs)
    this.timer.unref()
  }

  /** Entries to look at this period: enough to walk the store within WALK_SECONDS, within the bounds. */
  private quota (): number {
    const walkMs = Math.min(WALK_SECONDS, this.store.lifetimeSeconds) * 1000
    const wanted = Math.ceil(this.store.size * this.periodMs / walkMs)
    return Math.min(Math.max(CHUNK, wanted), Math.ceil(MAX_PER_SECOND * this.periodMs / 1000))
  }

  private sweep (left: number): void {
    if (this.chunk !== undefined) clearImmediate(this.chunk)
    this.chunk = undefined
    const now = Math.min(CHUNK, left)
    // A walk that ended waits for the next period: a small store is walked once a period.
    if (this.store.purgeExpired(now) || left <= now) return
    this.chunk = setImmediate(() => this.sweep(left - now))
  }

  close (): void {
    clearInterval(this.timer)
    if (this.chunk !== undefined) clearImmediate(this.chunk)
  }
}
