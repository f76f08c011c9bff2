import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { StoreTarget } from '../config/store-url.js'
import type { StoreTls } from './store-tls.js'

/** The few operations the session store needs, whatever the deployment (one server, Sentinel, Cluster). */
export interface KeyValueClient {
  /**
   * At most `maxBytes` of the value (GETRANGE, so a huge value planted under a session key
   * never crosses the network whole); null for no key (or an empty value).
   */
  get (key: string, maxBytes: number): Promise<Buffer | null>
  /** SET with an expiry in ms. */
  set (key: string, value: Buffer, ttlMs: number): Promise<void>
  del (key: string): Promise<void>
  /**
   * 'ready' once connected, 'unreachable' when `timeoutMs` passes first (it keeps trying), or
   * the server's refusal of this client's settings (a database it does not have): the client
   * is then closed, as the library would otherwise go on in database 0.
   */
  ready (timeoutMs: number): Promise<'ready' | 'unreachable' | { refused: string }>
  close (): Promise<void>
}

export interface RedisClientOptions {
  /** With TLS (rediss://): a private CA, a client certificate (store-tls.ts). */
  tls?: StoreTls
  /** Bound on any command the library still holds (writes included); lookups have their own, shorter bound. */
  commandTimeoutMs: number
  /** Connection errors, for a debug log (the caller's circuit breaker logs the transitions). */
  onError: (err: Error) => void
  /** Connected (again): the last connection error no longer holds. */
  onReady?: () => void
  /** The connection closed (the library reconnects, or gave up: 'end'). */
  onLost?: () => void
  /** The server refused the database (--session-store's /DB); the client is closed by then. */
  onRefused: (message: string) => void
}

/** What Redis says to a SELECT of a database it does not have: ioredis reports it, then goes on in database 0. */
const DB_REFUSED = /DB index is out of range|invalid DB index/i

/** Reconnect back-off: 50 ms doubling to 1 s, forever (the store may come back any time). */
function reconnectDelay (attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 5), 1000)
}

/**
 * An ioredis client set up for a cache that must never make anyone wait:
 * - no offline queue: while disconnected, a command fails at once instead of waiting for the
 *   reconnection (the breaker then stops asking);
 * - no retry of a command across reconnections (`maxRetriesPerRequest: 0`);
 * - auto-pipelining: commands issued in the same event-loop turn leave in one write, so a
 *   burst of New costs one round trip;
 * - reconnection with back-off, by the library, forever.
 */
export function createRedisClient (target: StoreTarget, opts: RedisClientOptions): KeyValueClient {
  const common: RedisOptions = {
    ...(target.username !== undefined ? { username: target.username } : {}),
    ...(target.password !== undefined ? { password: target.password } : {}),
    ...(target.tls ? { tls: { ...opts.tls } } : {}),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    enableAutoPipelining: true,
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: 1000,
    lazyConnect: true,
    retryStrategy: reconnectDelay
  }
  let client: Redis | Cluster
  if (target.mode === 'cluster') {
    const clusterOptions: ClusterOptions = {
      redisOptions: common,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      lazyConnect: true,
      clusterRetryStrategy: reconnectDelay
    }
    client = new Cluster(target.hosts, clusterOptions)
  } else if (target.mode === 'sentinel') {
    client = new Redis({
      ...common,
      db: target.db,
      sentinels: target.hosts,
      name: target.master as string,
      // Reconnect at the Sentinels' +switch-master: without it the client stays on the old
      // master until the Sentinel demotes it (its next INFO, up to ~10 s), and what it wrote
      // there meanwhile is lost when it resyncs as a replica.
      failoverDetector: true,
      ...(target.tls ? { enableTLSForSentinelMode: true, sentinelTLS: { ...opts.tls } } : {}),
      sentinelRetryStrategy: reconnectDelay
    })
  } else {
    const [host] = target.hosts
    client = new Redis({ ...common, db: target.db, host: host?.host ?? '127.0.0.1', port: host?.port ?? 6379 })
  }
  let refused: string | undefined
  // Without a listener, an 'error' event would throw; connection trouble is expected here.
  client.on('error', (err: Error) => {
    if (refused === undefined && DB_REFUSED.test(err.message)) {
      // Never serve from another database than the one asked for: another farm's, or an application's.
      refused = `${err.message} (the database of --session-store)`
      client.disconnect()
      opts.onRefused(refused)
      return
    }
    opts.onError(err)
  })
  client.on('ready', () => opts.onReady?.())
  client.on('close', () => opts.onLost?.())
  client.on('end', () => opts.onLost?.())
  const connected = client.connect().catch(() => { /* the library keeps reconnecting */ })

  return {
    get: async (key, maxBytes) => {
      const value = await client.getrangeBuffer(key, 0, maxBytes - 1)
      return value.length === 0 ? null : value
    },
    set: async (key, value, ttlMs) => { await client.set(key, value, 'PX', Math.max(1, Math.ceil(ttlMs))) },
    del: async (key) => { await client.del(key) },
    ready: async (timeoutMs) => {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<false>((resolve) => { timer = setTimeout(resolve, timeoutMs, false) })
      // The library selects the database right after it connects; its refusal comes a round trip later.
      const up = connected.then(async () => client.status === 'ready' && (await client.ping().then(() => true, () => false)))
      let answered: boolean
      try { answered = await Promise.race([up, timeout]) } finally { clearTimeout(timer) }
      if (refused !== undefined) return { refused }
      return answered ? 'ready' : 'unreachable'
    },
    close: async () => { client.disconnect() }
  }
}
