import type { Registry } from 'prom-client'
import { describeStoreTarget, type StoreTarget } from '../config/store-url.js'
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
  const breaker = new CircuitBreaker({
    ...BREAKER,
    onChange: (up, { backoffMs }) => {
      if (up) log.info({ store: where }, 'session store answers again: lookups resume')
      else log.warn({ store: where, retryInMs: backoffMs }, 'session store failing: lookups stop (full handshakes for sessions not in L2) and are retried with back-off')
    }
  })
  const client = createRedisClient(opts.target, {
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    onError: (err) => log.debug({ err, store: where }, 'session store connection error')
  })
  const store = new SharedSessionStore({
    client,
    sealer: new SessionSealer(new FarmKeyRing(opts.farmKeys)),
    breaker,
    metrics: new StoreMetrics(opts.registry, () => breaker.state),
    prefix: opts.prefix,
    lookupTimeoutMs: opts.lookupTimeoutMs,
    remainingMs: opts.remainingMs,
    log
  })
  if (await client.ready(CONNECT_WAIT_MS)) log.info({ store: where, prefix: opts.prefix, lookupTimeoutMs: opts.lookupTimeoutMs }, 'session store connected')
  else log.warn({ store: where }, 'session store not reachable at start: serving without it, reconnecting in the background')
  return store
}
