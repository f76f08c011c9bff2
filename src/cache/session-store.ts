import { LRUCache } from 'lru-cache'

/** A TLS session as the caches hold it: the DER from OpenSSL and when it was created. */
export interface SessionEntry {
  der: Buffer
  /** Unix time in seconds at which the session was created (on whichever node created it). */
  createdAt: number
}

export interface SessionStoreOptions {
  maxEntries: number
  /** Bound on the sum of entry sizes (DER + ID + bookkeeping); unbounded when absent. */
  maxBytes?: number
  /** Session lifetime: an entry expires at createdAt + lifetimeSeconds on every holder. */
  lifetimeSeconds: number
  now?: () => number
}

/** Rough per-entry overhead (key string, object, LRU links) so the byte bound means memory. */
const ENTRY_OVERHEAD_BYTES = 160

/**
 * One level of the session cache (L1 in a worker, L2 in the primary): an LRU keyed by the
 * session ID, bounded by entries and bytes, where each entry expires at its *original*
 * creation time plus the lifetime, so a session copied between workers or nodes dies at the
 * same moment everywhere instead of living on in each copy.
 */
export class SessionStore {
  private readonly lru: LRUCache<string, SessionEntry>
  private readonly lifetimeMs: number
  private readonly now: () => number
  hits = 0
  misses = 0

  constructor (opts: SessionStoreOptions) {
    this.lifetimeMs = opts.lifetimeSeconds * 1000
    this.now = opts.now ?? Date.now
    this.lru = new LRUCache<string, SessionEntry>({
      max: opts.maxEntries,
      ...(opts.maxBytes !== undefined
        ? { maxSize: opts.maxBytes, sizeCalculation: (entry, key) => entry.der.length + key.length + ENTRY_OVERHEAD_BYTES }
        : {}),
      ttlAutopurge: false,
      // Expiry is checked on read; no timers per entry (a busy node holds 100k of them).
      allowStale: false
    })
  }

  /** Remaining lifetime in ms of a session created at `createdAt` (seconds), <= 0 when expired. */
  remainingMs (createdAt: number): number {
    return createdAt * 1000 + this.lifetimeMs - this.now()
  }

  /** Store a session; returns false (and stores nothing) when it has already expired. */
  set (id: Buffer, entry: SessionEntry): boolean {
    const ttl = this.remainingMs(entry.createdAt)
    if (ttl <= 0) return false
    this.lru.set(id.toString('hex'), entry, { ttl: Math.ceil(ttl) })
    return true
  }

  /** Look a session up, counting the hit or miss. */
  get (id: Buffer): SessionEntry | undefined {
    const entry = this.lru.get(id.toString('hex'))
    if (entry === undefined || this.remainingMs(entry.createdAt) <= 0) {
      this.misses++
      return undefined
    }
    this.hits++
    return entry
  }

  has (id: Buffer): boolean {
    return this.lru.has(id.toString('hex'))
  }

  delete (id: Buffer): boolean {
    return this.lru.delete(id.toString('hex'))
  }

  /** Live entries (for snapshots to a joining peer), oldest last. */
  * entries (): Generator<[Buffer, SessionEntry]> {
    for (const [key, entry] of this.lru.entries()) {
      if (this.remainingMs(entry.createdAt) > 0) yield [Buffer.from(key, 'hex'), entry]
    }
  }

  get size (): number { return this.lru.size }
  get bytes (): number { return this.lru.calculatedSize ?? 0 }
  purgeExpired (): void { this.lru.purgeStale() }
  clear (): void { this.lru.clear() }
}
