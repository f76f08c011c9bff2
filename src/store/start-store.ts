import type { Registry } from 'prom-client'
import { describeStoreTarget, type StoreTarget } from '../config/store-url.js'
import { ConfigError } from '../errors.js'
import { FarmKeyRing, type FarmKey } from '../sync/farm-keys.js'
import type { Logger } from '../util/logger.js'
import { CircuitBreaker } from './circuit-breaker.js'
import { createRedisClient } from './redis-client.js'
import { SessionSealer } from './sealed-session.js'
import type { StoreTls } from './store-tls.js'
import { SharedSessionStore, type StorePath } from './shared-session-store.js'
import { StoreConnection } from './store-connection.js'
import { StoreMetrics } from './store-metrics.js'

/**
 * Failures in a row that open the circuit, its back-off before the next probe, and how long it
 * must then stay closed for the store to count as back (a store that answers the odd probe but
 * not much else keeps its longer back-off and logs no "answers again").
 */
const BREAKER = { failureThreshold: 5, initialBackoffMs: 200, maxBackoffMs: 2000, stableMs: 3000 }
/** What ioredis says of a command while disconnected (no offline queue): the connection's error says why. */
const NOT_CONNECTED = /Stream isn't writeable|Connection is closed/

const FAILING: Record<StorePath, string> = {
  lookups: 'session store failing: lookups stop (full handshakes for sessions not in L2) and are retried with back-off',
  writes: 'session store refuses writes: new sessions are not shared through it until a write succeeds again; retried with back-off',
  deletes: 'session store refuses deletes: sessions found bad here stay in it (other nodes may read them until they expire) until a delete succeeds again; retried with back-off'
}
const ANSWERS_AGAIN: Record<StorePath, string> = {
  lookups: 'session store answers again: lookups resume',
  writes: 'session store takes writes again',
  deletes: 'session store takes deletes again'
}

/** How long start waits to say whether the store answers; the node serves either way. */
const CONNECT_WAIT_MS = 1000
/** Bound on writes still held by the client library (lookups have their own, shorter one). */
const COMMAND_TIMEOUT_MS = 1000
/** A connection that flaps logs at most one "connected" and one "connection lost" line per this time. */
const CONNECTION_LINE_HOLD_MS = 10_000
/** A server that accepts the connection and never answers (hung): ioredis says only this. */
const SILENT = 'Command timed out'

/**
 * Build the shared store from the options: a client for the target, the sealer keyed by the
 * farm secrets, the circuit breakers of lookups, writes and deletes (each logs once when its calls
 * start failing, with the cause, and once when they succeed again) and the metrics. A store
 * that does not answer at start is logged, not fatal.
 */
export async function startSharedStore (opts: {
  target: StoreTarget
  /** rediss://: a private CA, a client certificate. */
  tls?: StoreTls
  farmKeys: FarmKey[]
  prefix: string
  lookupTimeoutMs: number
  remainingMs: (createdAt: number) => number
  lifetimeMs: number
  maxSkewMs: number
  registry: Registry
  log: Logger
  /** How --session-store was given (config/load.ts optionOrigin), for a refusal; `--session-store` when absent. */
  origin?: string
}): Promise<SharedSessionStore> {
  const where = describeStoreTarget(opts.target)
  const log = opts.log
  // Why each path last failed, since its breaker last closed: the log line of a store going
  // down says why (a wrong password, an ACL, OOM under noeviction, a store too far for the
  // lookup bound read otherwise like an outage).
  const causes = new Map<StorePath, string>()
  // The connection's own error: a command refused while disconnected says only that.
  let connectionError: string | undefined
  const silent = `no answer within ${COMMAND_TIMEOUT_MS} ms`
  const causeOf = (failure: string | Error): string => {
    if (typeof failure === 'string') return failure
    if (failure.message === SILENT) return silent
    if (!NOT_CONNECTED.test(failure.message)) return failure.message
    return connectionError !== undefined ? `not connected: ${connectionError}` : 'not connected'
  }
  const breakerFor = (path: StorePath): CircuitBreaker => new CircuitBreaker({
    ...BREAKER,
    onChange: (up, { backoffMs }) => {
      const cause = causes.get(path)
      if (up) {
        causes.delete(path)
        log.info({ store: where }, ANSWERS_AGAIN[path])
      } else {
        log.warn({ store: where, retryInMs: backoffMs, ...(cause !== undefined ? { cause } : {}) }, FAILING[path])
      }
    }
  })
  const breakers = { lookups: breakerFor('lookups'), writes: breakerFor('writes'), deletes: breakerFor('deletes') }
  const connection = new StoreConnection({
    holdMs: CONNECTION_LINE_HOLD_MS,
    announce: {
      up: () => log.info({ store: where }, 'session store connected'),
      down: () => log.warn({ store: where, cause: connectionError ?? 'the connection closed' }, 'session store connection lost: serving without it, reconnecting in the background')
    }
  })
  const client = createRedisClient(opts.target, {
    ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    onError: (err) => {
      // One wording whatever the library's: a hung server reads "no answer", as at start.
      connectionError = err.message === SILENT ? silent : err.message
      // The message and code only: ioredis's errors carry the command, and AUTH's holds the password.
      log.debug({ cause: err.message, code: (err as NodeJS.ErrnoException).code, store: where }, 'session store connection error')
    },
    onReady: () => { connectionError = undefined; connection.ready() },
    onLost: () => {
      // A server killed says nothing: the cause of the calls that fail next is the closing itself.
      connectionError ??= 'the connection closed'
      connection.lost()
    },
    onRefused: (message) => {
      connection.close()
      log.error({ store: where, reason: message }, 'session store refused: Redis has no such database; the store is closed and not used (fix --session-store)')
    }
  })
  const store = new SharedSessionStore({
    target: where,
    // Closing the store (the node stops) is no lost connection to log.
    client: { ...client, close: async () => { connection.close(); await client.close() } },
    connected: () => connection.connected,
    sealer: new SessionSealer(new FarmKeyRing(opts.farmKeys)),
    breakers,
    metrics: new StoreMetrics(opts.registry, () => ({ lookups: breakers.lookups.state, writes: breakers.writes.state, deletes: breakers.deletes.state }), () => connection.connected),
    prefix: opts.prefix,
    lookupTimeoutMs: opts.lookupTimeoutMs,
    remainingMs: opts.remainingMs,
    lifetimeMs: opts.lifetimeMs,
    maxSkewMs: opts.maxSkewMs,
    onFailure: (path, failure) => { causes.set(path, causeOf(failure)) },
    log
  })
  const ready = await client.ready(CONNECT_WAIT_MS)
  // Redis answered, and said no: the option must change (unlike a store that is down, which may come back).
  if (typeof ready === 'object') throw new ConfigError([`${opts.origin ?? '--session-store'} "${where}": ${ready.refused}`])
  if (ready === 'ready') log.info({ store: where, prefix: opts.prefix, lookupTimeoutMs: opts.lookupTimeoutMs }, 'session store connected')
  else log.warn({ store: where, cause: connectionError ?? `no answer within ${CONNECT_WAIT_MS} ms`, ...tlsHint(opts.target, opts.tls, connectionError) }, 'session store not reachable at start: serving without it, reconnecting in the background')
  // From here on, "connected" and "connection lost" lines say when that changes.
  connection.started(ready === 'ready')
  return store
}

/**
 * A TLS server that wants a client certificate and gets none closes the connection: Node says
 * only "ECONNRESET" (or a "certificate required" alert). Said in the operator's terms.
 */
function tlsHint (target: StoreTarget, tls: StoreTls | undefined, cause: string | undefined): { hint?: string } {
  if (!target.tls || tls?.cert !== undefined || cause === undefined || !/ECONNRESET|EPIPE|certificate required|socket hang up/i.test(cause)) return {}
  return { hint: 'the store closed the TLS connection: if it asks for a client certificate (Redis\'s tls-auth-clients yes, its default with TLS), give --session-store-cert' }
}
