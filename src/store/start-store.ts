import type { Registry } from 'prom-client'
import { describeStoreTarget, type StoreTarget } from '../config/store-url.js'
import { ConfigError } from '../errors.js'
import { FarmKeyRing, type FarmKey } from '../sync/farm-keys.js'
import type { Logger } from '../util/logger.js'
import { CircuitBreaker } from './circuit-breaker.js'
import { createRedisClient } from './redis-client.js'
import { SessionSealer } from './sealed-session.js'
import { SharedSessionStore } from './shared-session-store.js'
import { StoreMetrics } from './store-metrics.js'

/** Failures in a row that open the circuit, and its back-off before the next probe. */
const BREAKER = { failureThreshold: 5, initialBackoffMs: 200, maxBackoffMs: 2000 }
/** How long start waits to say whether the store answers; the node serves either way. */
const CONNECT_WAIT_MS = 1000
/** Bound on writes still held by the client library (lookups have their own, shorter one). */
const COMMAND_TIMEOUT_MS = 1000

/**
 * Build the shared store from the options: a client for the target, the sealer keyed by the
 * farm secrets, the circuit breaker (which logs once when the store goes down and once when it
 * is back) and the metrics. A store that does not answer at start is logged, not fatal.
 */
export async function startSharedStore (opts: {
  target: StoreTarget
  farmKeys: FarmKey[]
  prefix: string
  lookupTimeoutMs: number
  remainingMs: (createdAt: number) => number
  registry: Registry
  log: Logger
}): Promise<SharedSessionStore> {
  const where = describeStoreTarget(opts.target)
  const log = opts.log
  // The last error Redis or the connection gave: the logs of a store going down say why (a
  // wrong password or an ACL that forbids the keys reads otherwise like an outage).
  let lastError: string | undefined
  const breaker = new CircuitBreaker({
    ...BREAKER,
    onChange: (up, { backoffMs }) => {
      if (up) log.info({ store: where }, 'session store answers again: lookups resume')
      else log.warn({ store: where, retryInMs: backoffMs, ...(lastError !== undefined ? { cause: lastError } : {}) }, 'session store failing: lookups stop (full handshakes for sessions not in L2) and are retried with back-off')
    }
  })
  const client = createRedisClient(opts.target, {
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    onError: (err) => {
      lastError = err.message
      log.debug({ err, store: where }, 'session store connection error')
    },
    onRefused: (message) => log.error({ store: where, reason: message }, 'session store refused: Redis has no such database; the store is closed and not used (fix --session-store)')
  })
  const store = new SharedSessionStore({
    client,
    sealer: new SessionSealer(new FarmKeyRing(opts.farmKeys)),
    breaker,
    metrics: new StoreMetrics(opts.registry, () => breaker.state),
    prefix: opts.prefix,
    lookupTimeoutMs: opts.lookupTimeoutMs,
    remainingMs: opts.remainingMs,
    onError: (err) => { lastError = err.message },
    log
  })
  const ready = await client.ready(CONNECT_WAIT_MS)
  // Redis answered, and said no: the option must change (unlike a store that is down, which may come back).
  if (typeof ready === 'object') throw new ConfigError([`--session-store "${where}": ${ready.refused}`])
  if (ready === 'ready') log.info({ store: where, prefix: opts.prefix, lookupTimeoutMs: opts.lookupTimeoutMs }, 'session store connected')
  else log.warn({ store: where, ...(lastError !== undefined ? { cause: lastError } : {}) }, 'session store not reachable at start: serving without it, reconnecting in the background')
  return store
}
