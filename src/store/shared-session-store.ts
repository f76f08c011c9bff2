import type { SessionEntry } from '../cache/session-store.js'
import type { Logger } from '../util/logger.js'
import type { BreakerState, CircuitBreaker } from './circuit-breaker.js'
import type { KeyValueClient } from './redis-client.js'
import type { SessionSealer } from './sealed-session.js'
import type { LookupResult, StoreMetrics } from './store-metrics.js'
import { FarmKeyRing, type FarmKey } from '../sync/farm-keys.js'

/**
 * What a breaker guards: lookups, writes (SET) and deletes (DEL) fail apart. A store too far for
 * the lookup bound still takes writes; a full one (maxmemory, noeviction) still answers GETs and
 * takes DELs, which Redis never refuses for memory: a bad session must still be deleted.
 */
export type StorePath = 'lookups' | 'writes' | 'deletes'

export interface StoreStatus {
  /** The URL without its password. */
  target: string
  /** The client holds a ready connection (the breakers learn of an outage only from calls). */
  connected: boolean
  lookups: BreakerState
  writes: BreakerState
  deletes: BreakerState
}

export interface SharedStoreParts {
  /** The URL without its password (describeStoreTarget). */
  target: string
  client: KeyValueClient
  /** Whether the client's connection is ready now (store-connection.ts). */
  connected: () => boolean
  sealer: SessionSealer
  breakers: Record<StorePath, CircuitBreaker>
  metrics: StoreMetrics
  /** Key prefix naming the farm: `<prefix>session:<hex id>`. */
  prefix: string
  /** A lookup answers within this bound, or counts as a timeout (a full handshake). */
  lookupTimeoutMs: number
  /** Remaining lifetime of a session created at `createdAt` (L2's clock and timeout). */
  remainingMs: (createdAt: number) => number
  /** --session-timeout: no value is kept in the store longer. */
  lifetimeMs: number
  /** --sync-max-skew: how far ahead of this clock a value may be dated, as for the sync. */
  maxSkewMs: number
  /** A call failed: why (Redis's or the library's words, or the timeout), kept for the breaker's log line. */
  onFailure?: (path: StorePath, cause: string | Error) => void
  log: Logger
}

/**
 * The most a value read back may weigh: a sealed session is its DER (a few hundred bytes, a
 * few KiB with a client certificate) plus 34. A bigger one is someone else's, refused unread.
 */
export const MAX_VALUE_BYTES = 64 * 1024

/** Redis's refusal of a SET at maxmemory under noeviction: the store is full, not down. */
const OUT_OF_MEMORY = /^OOM /

/** Redis's answer to a GET of a key that holds no string: someone else's data under our keys. */
const WRONG_TYPE = /^WRONGTYPE/

/**
 * The third level behind L2: a store every node of the farm shares (Redis or Valkey).
 * New is written after L2, fire-and-forget; a Get that missed L2 asks here with a bound; a
 * Del removes the value too. Values are sealed (sealed-session.ts). Nothing here can stall a
 * handshake: lookups are bounded, and while they fail their breaker stops asking at all.
 */
export class SharedSessionStore {
  constructor (private readonly parts: SharedStoreParts) {}

  /** For /v1/cache: where the store is and whether each path is asked. */
  status (): StoreStatus {
    const { lookups, writes, deletes } = this.parts.breakers
    return { target: this.parts.target, connected: this.parts.connected(), lookups: lookups.state, writes: writes.state, deletes: deletes.state }
  }

  key (id: Buffer): string { return `${this.parts.prefix}session:${id.toString('hex')}` }

  /** SIGHUP read other farm secrets: values are sealed under the first from now on. */
  setFarmKeys (keys: FarmKey[]): void { this.parts.sealer.setRing(new FarmKeyRing(keys)) }

  /** After an L2 miss: the session, or undefined (miss, timeout, error, refused value, circuit open). */
  async lookup (id: Buffer): Promise<SessionEntry | undefined> {
    const { metrics, client } = this.parts
    const breaker = this.parts.breakers.lookups
    const call = breaker.allow()
    if (call === undefined) { metrics.lookups.inc({ result: 'skipped' }); return undefined }
    const started = performance.now()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, this.parts.lookupTimeoutMs, 'timeout') })
    let answer: Buffer | null | 'timeout' | 'error' | 'wrong_type'
    try {
      answer = await Promise.race([client.get(this.key(id), MAX_VALUE_BYTES).catch((err: Error) => this.failed(err)), timeout])
    } finally {
      clearTimeout(timer)
    }
    metrics.lookupSeconds.observe((performance.now() - started) / 1000)
    if (answer === 'timeout') this.parts.onFailure?.('lookups', `no answer within --session-store-timeout (${this.parts.lookupTimeoutMs} ms)`)
    if (answer === 'timeout' || answer === 'error') {
      breaker.failure(call)
      return this.count(answer)
    }
    breaker.success(call)
    if (answer === 'wrong_type') {
      // Redis answered: not an outage, but a value that is not ours.
      metrics.rejected.inc({ reason: 'wrong_type' })
      return this.count('rejected')
    }
    if (answer === null) return this.count('miss')
    if (answer.length >= MAX_VALUE_BYTES) {
      metrics.rejected.inc({ reason: 'malformed' })
      return this.count('rejected')
    }
    const opened = this.parts.sealer.open(id, answer)
    if (!opened.ok) {
      metrics.rejected.inc({ reason: opened.reason })
      this.parts.log.debug({ id: id.toString('hex'), reason: opened.reason }, 'session store value refused')
      return this.count('rejected')
    }
    const remaining = this.parts.remainingMs(opened.entry.createdAt)
    if (remaining <= 0) return this.count('miss')
    // Dated ahead by more than the skew the sync allows: it would live past the session lifetime.
    if (remaining > this.parts.lifetimeMs + this.parts.maxSkewMs) {
      metrics.rejected.inc({ reason: 'future' })
      return this.count('rejected')
    }
    metrics.lookups.inc({ result: 'hit' })
    return opened.entry
  }

  /** New from this node's workers (after L2): sealed, with the session's remaining lifetime as TTL. */
  write (id: Buffer, entry: SessionEntry): void {
    // Never longer than the session lifetime, whatever the date (a clock ahead within the skew).
    const ttlMs = Math.min(this.parts.remainingMs(entry.createdAt), this.parts.lifetimeMs)
    if (ttlMs <= 0) return
    const value = this.parts.sealer.seal(id, entry)
    this.send('set', async () => { await this.parts.client.set(this.key(id), value, ttlMs) })
  }

  /** Del from this node's workers: a session OpenSSL refused is removed farm-wide. */
  remove (id: Buffer): void {
    this.send('del', async () => { await this.parts.client.del(this.key(id)) })
  }

  async close (): Promise<void> { await this.parts.client.close() }

  private send (op: 'set' | 'del', write: () => Promise<void>): void {
    const { metrics } = this.parts
    const path: StorePath = op === 'set' ? 'writes' : 'deletes'
    const breaker = this.parts.breakers[path]
    const call = breaker.allow()
    if (call === undefined) { metrics.writes.inc({ op, result: 'skipped' }); return }
    write().then(() => {
      breaker.success(call)
      metrics.writes.inc({ op, result: 'ok' })
    }, (err: Error) => {
      this.parts.onFailure?.(path, err)
      breaker.failure(call)
      metrics.writes.inc({ op, result: OUT_OF_MEMORY.test(err.message) ? 'refused_oom' : 'error' })
    })
  }

  /** A lookup that failed: a key holding another type is a refused value; anything else an error, remembered. */
  private failed (err: Error): 'error' | 'wrong_type' {
    if (WRONG_TYPE.test(err.message)) return 'wrong_type'
    this.parts.onFailure?.('lookups', err)
    return 'error'
  }

  private count (result: Exclude<LookupResult, 'hit'>): undefined {
    this.parts.metrics.lookups.inc({ result })
    return undefined
  }
}
