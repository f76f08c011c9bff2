import { LRUCache } from 'lru-cache'

/** snapshot(): entries passed over in a row before it yields a pause point (~1 µs each). */
export const SNAPSHOT_SKIPS_PER_PAUSE = 1000

/** The creation time is stored in front of the DER, as 4 latin1 characters (u32, big-endian). */
const CREATED_AT_CHARS = 4

/** A TLS session as the caches hold it: the DER from OpenSSL and when it was created. */
export interface SessionEntry {
  der: Buffer
  /** Unix time in seconds at which the session was created (on whichever node created it). */
  createdAt: number
}

export interface SessionStoreOptions {
  maxEntries: number
  /** Bound on the sum of what the entries cost (entryCost); unbounded when absent. */
  maxBytes?: number
  /** Session lifetime: an entry expires at createdAt + lifetimeSeconds on every holder. */
  lifetimeSeconds: number
  now?: () => number
}

/**
 * What an entry costs a primary at work, as --cache-max-bytes counts it: a growth factor times
 * the bytes of its two strings (ID; creation time and DER), plus a fixed overhead. Fitted on
 * `tlsfleet bench --suites memory` (docs/benchmarks.md), whose `running` mode measures a process's
 * RSS growth per session while sessions arrive over IPC as from busy workers (within ±10% for
 * DERs of 130 to 1000 bytes on Node 24, ±30% on Node 22). Settled after full collections an
 * entry takes about half of it; at work V8 lets the old generation grow beyond what is live
 * before collecting it, and each insert leaves a few copies behind until then: that is what RSS,
 * and a memory limit, see. How much beyond depends on the V8 of the Node.js line: Node 24's
 * (V8 13) kept about twice the garbage Node 22's (V8 12) did under the same load.
 */
export function runningCostFor (nodeMajor: number): { growth: number; overheadBytes: number } {
  return nodeMajor <= 22 ? { growth: 1.0, overheadBytes: 210 } : { growth: 2.3, overheadBytes: 140 }
}

const RUNNING_COST = runningCostFor(Number(process.versions.node.split('.')[0]))
export const RUNNING_GROWTH = RUNNING_COST.growth
export const ENTRY_OVERHEAD_BYTES = RUNNING_COST.overheadBytes

/** What a session with an ID of `idBytes` and a DER of `derBytes` counts against the byte bound. */
export function entryCost (idBytes: number, derBytes: number): number {
  return Math.ceil(RUNNING_GROWTH * (idBytes + CREATED_AT_CHARS + derBytes)) + ENTRY_OVERHEAD_BYTES
}

/**
 * One level of the session cache (L1 in a worker, L2 in the primary): an LRU keyed by the
 * session ID, bounded by entries and bytes, where each entry expires at its *original*
 * creation time plus the lifetime, so a session copied between workers or nodes dies at the
 * same moment everywhere instead of living on in each copy. Expiry is checked on read (the
 * creation time is in the entry); no timer per entry (a busy node holds 100k of them): expired
 * entries nobody asks for again are dropped by purgeExpired, a little at a time (ExpirySweep).
 *
 * Memory: a node holds up to --cache-size sessions, so an entry is two strings and nothing
 * else. The key is the ID as a latin1 string (one byte per character); the value is the
 * creation time and the DER, also latin1. As Buffers (a typed array over an ArrayBuffer
 * each) an entry cost ~1.7x more beyond its DER, and a DER that arrived over IPC was a view
 * that kept the whole IPC read alive. A read makes a Buffer again (a copy of ~150
 * bytes), which L2 answers and snapshots pay, and L1 each session-ID resumption: a fraction of
 * a microsecond. `tlsfleet bench --suites memory` measures it (docs/benchmarks.md).
 */
export class SessionStore {
  private readonly lru: LRUCache<string, string>
  private readonly lifetimeMs: number
  private readonly now: () => number
  /** snapshot()s under way (each a paused walk over the LRU's order). */
  private readonly walks = new Set<SnapshotWalk>()
  /** purgeExpired's walk under way, if any. */
  private walk: ReturnType<LRUCache<string, string>['rentries']> | undefined
  hits = 0
  misses = 0

  constructor (opts: SessionStoreOptions) {
    this.lifetimeMs = opts.lifetimeSeconds * 1000
    this.now = opts.now ?? Date.now
    this.lru = new LRUCache<string, string>({
      max: opts.maxEntries,
      ...(opts.maxBytes !== undefined ? { maxSize: opts.maxBytes, sizeCalculation: entrySize } : {})
    })
  }

  get lifetimeSeconds (): number { return this.lifetimeMs / 1000 }

  /** Remaining lifetime in ms of a session created at `createdAt` (seconds), <= 0 when expired. */
  remainingMs (createdAt: number): number {
    return createdAt * 1000 + this.lifetimeMs - this.now()
  }

  /** Store a session; returns false (and stores nothing) when it has already expired. */
  set (id: Buffer, entry: SessionEntry): boolean {
    if (this.remainingMs(entry.createdAt) <= 0) return false
    const key = id.toString('latin1')
    if (this.walks.size > 0) this.touched(key)
    this.lru.set(key, encodeValue(entry))
    if (this.walks.size > 0) this.evictedUnder()
    return true
  }

  /** Look a session up, counting the hit or miss. */
  get (id: Buffer): SessionEntry | undefined {
    const key = id.toString('latin1')
    if (this.walks.size > 0) this.touched(key)
    const value = this.lru.get(key)
    const createdAt = value === undefined ? 0 : createdAtOf(value)
    if (value === undefined || this.remainingMs(createdAt) <= 0) {
      if (value !== undefined) this.lru.delete(key)
      this.misses++
      return undefined
    }
    this.hits++
    return { der: derOf(value), createdAt }
  }

  has (id: Buffer): boolean {
    return this.lru.has(id.toString('latin1'))
  }

  delete (id: Buffer): boolean {
    const key = id.toString('latin1')
    if (this.walks.size > 0) this.touched(key)
    return this.lru.delete(key)
  }

  /** Live entries (for snapshots to a joining peer), most recently used first. */
  * entries (): Generator<[Buffer, SessionEntry]> {
    for (const [key, value] of this.lru.entries()) {
      const createdAt = createdAtOf(value)
      if (this.remainingMs(createdAt) > 0) yield [Buffer.from(key, 'latin1'), { der: derOf(value), createdAt }]
    }
  }

  /**
   * Live entries for a snapshot to a joining peer, read as the walk reaches them, oldest first,
   * in as many event-loop turns as the caller spreads it over: nothing is taken at the start
   * (collecting the IDs first blocked the process ~75 ms per 100k sessions), no entry is copied
   * before it is yielded, and no LRU move or hit is counted. A session held throughout is yielded
   * exactly once; one deleted or expired before the walk reaches it is not; one added meanwhile
   * may be (the joiner hears of it as an update anyway).
   *
   * How, while the cache changes between two steps: lru-cache's walk from the oldest end reads
   * an entry's successor when it goes on, and every change moves an entry to the newest end (a
   * read, a new value, a new entry) or removes it, so entries not yet reached stay ahead of the
   * walk. Three things would break that. An entry already yielded and moved ahead again would
   * come twice: the keys yielded are remembered (references to the store's own strings). The
   * entry the walk stands on, moved or deleted, would lose it its place (its successor is then
   * the newest end, or nothing): the store's own read, set and delete step the walk past it
   * first (touched), reading the successor ahead, checked again when its turn comes. And the
   * entry it stands on evicted (set, a full store): the walk starts again from the oldest end,
   * which is where it was (evictions take the oldest first), skipping what it yielded.
   *
   * Entries passed over (yielded before and moved ahead since, expired) cost a step each without
   * yielding; a read-heavy store moves thousands of them ahead during a snapshot, which would
   * pass in one of the caller's turns: every SNAPSHOT_SKIPS_PER_PAUSE of them in a row, the walk
   * yields undefined, a point where the caller can pause.
   */
  * snapshot (): Generator<[Buffer, SessionEntry] | undefined> {
    const walk: SnapshotWalk = { entries: this.lru.rentries(), at: undefined, ahead: [], lost: false }
    const yielded = new Set<string>()
    let skipped = 0
    this.walks.add(walk)
    try {
      for (;;) {
        if (skipped >= SNAPSHOT_SKIPS_PER_PAUSE) {
          skipped = 0
          yield undefined
        }
        let key = walk.ahead.shift()
        let value: string | undefined
        if (key !== undefined) {
          value = this.lru.peek(key) // read ahead: deleted or changed since, maybe
        } else {
          if (walk.lost) {
            walk.lost = false
            walk.entries = this.lru.rentries()
          }
          const next = walk.entries.next()
          if (next.done === true) return
          ;[key, value] = next.value // lru-cache types the pair as string[]
          walk.at = key
        }
        const createdAt = value === undefined ? 0 : createdAtOf(value)
        if (key === undefined || value === undefined || yielded.has(key) || this.remainingMs(createdAt) <= 0) {
          skipped++
          continue
        }
        yielded.add(key)
        skipped = 0
        yield [Buffer.from(key, 'latin1'), { der: derOf(value), createdAt }]
      }
    } finally {
      this.walks.delete(walk)
    }
  }

  /** `key` is about to move (read, new value) or go: a snapshot standing on it steps past it first. */
  private touched (key: string): void {
    for (const walk of this.walks) {
      if (walk.at !== key || walk.lost) continue
      const next = walk.entries.next()
      walk.at = next.done === true ? undefined : next.value[0]
      if (walk.at !== undefined) walk.ahead.push(walk.at)
    }
  }

  /** After an insert: a snapshot whose entry was evicted has lost its place. */
  private evictedUnder (): void {
    for (const walk of this.walks) if (walk.at !== undefined && !this.lru.has(walk.at)) walk.lost = true
  }

  /** Entries held: expired ones count until ExpirySweep's walk drops them (within one walk). */
  get size (): number { return this.lru.size }
  /** The byte bound's measure of what is held: entryCost per entry. */
  get bytes (): number { return this.lru.calculatedSize ?? 0 }

  /**
   * Drops expired entries, looking at `budget` entries at most, from where the last call
   * stopped: the walk (least recently used first) of a store of millions is spread over many
   * calls (~0.6 µs an entry), so no call pauses the process long. lru-cache's own purgeStale
   * would walk everything at once, and its TTLs cost two numbers a slot whatever is held.
   * Entries used meanwhile move to the newest end and are seen again. Returns true when the walk
   * reached its end; the next call starts a new one.
   */
  purgeExpired (budget: number): boolean {
    this.walk ??= this.lru.rentries()
    for (let seen = 0; seen < budget; seen++) {
      const next = this.walk.next()
      if (next.done === true) {
        this.walk = undefined
        return true
      }
      const [key, value] = next.value // lru-cache types the pair as string[]
      if (key !== undefined && value !== undefined && this.remainingMs(createdAtOf(value)) <= 0) {
        if (this.walks.size > 0) this.touched(key)
        this.lru.delete(key)
      }
    }
    return false
  }

  clear (): void {
    for (const walk of this.walks) walk.lost = true
    this.lru.clear()
    this.walk = undefined
  }
}

/**
 * A snapshot()'s walk over lru-cache's order: `at`, the key `entries` stands on; `ahead`, keys
 * it stepped past because `at` was about to move or go, still to be yielded; `lost`, `at` was
 * evicted (start again from the oldest end).
 */
interface SnapshotWalk {
  entries: ReturnType<LRUCache<string, string>['rentries']>
  at: string | undefined
  ahead: string[]
  lost: boolean
}

function encodeValue (entry: SessionEntry): string {
  const bytes = Buffer.allocUnsafe(CREATED_AT_CHARS + entry.der.length)
  bytes.writeUInt32BE(entry.createdAt >>> 0, 0)
  entry.der.copy(bytes, CREATED_AT_CHARS)
  return bytes.toString('latin1')
}

function derOf (value: string): Buffer {
  return Buffer.from(value.slice(CREATED_AT_CHARS), 'latin1')
}

function createdAtOf (value: string): number {
  return ((value.charCodeAt(0) << 24) >>> 0) + (value.charCodeAt(1) << 16) + (value.charCodeAt(2) << 8) + value.charCodeAt(3)
}

function entrySize (value: string, key: string): number {
  return entryCost(key.length, value.length - CREATED_AT_CHARS)
}
