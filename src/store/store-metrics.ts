import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { BreakerState } from './circuit-breaker.js'
import type { StorePath } from './shared-session-store.js'
import { STORE_REJECT_REASONS } from './sealed-session.js'

export const LOOKUP_RESULTS = ['hit', 'miss', 'timeout', 'error', 'rejected', 'skipped'] as const
export type LookupResult = typeof LOOKUP_RESULTS[number]
const BREAKER_STATES: BreakerState[] = ['closed', 'open', 'half_open']
/** Results of a write by op: only a SET is refused for memory (Redis never refuses a DEL so). */
const WRITE_RESULTS = { set: ['ok', 'error', 'refused_oom', 'skipped'], del: ['ok', 'error', 'skipped'] } as const

/** The shared store's metrics, registered in the primary's registry. */
export class StoreMetrics {
  readonly lookups: Counter<'result'>
  readonly lookupSeconds: Histogram
  readonly writes: Counter<'op' | 'result'>
  readonly rejected: Counter<'reason'>

  constructor (registry: Registry, breakerStates: () => Record<StorePath, BreakerState>, connected: () => boolean) {
    const registers = [registry]
    this.lookups = new Counter({ name: 'tlsfleet_session_store_lookups_total', help: 'Shared store lookups after an L2 miss, by result (skipped: circuit open; rejected: a value that did not open)', labelNames: ['result'] as const, registers })
    for (const result of LOOKUP_RESULTS) this.lookups.inc({ result }, 0)
    this.lookupSeconds = new Histogram({
      name: 'tlsfleet_session_store_lookup_duration_seconds',
      help: 'Time from asking the shared store to its answer (or to the lookup timeout)',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers
    })
    this.writes = new Counter({ name: 'tlsfleet_session_store_writes_total', help: 'Shared store writes (set: New, del: Del), by result (refused_oom: a full store refused it; skipped: circuit open)', labelNames: ['op', 'result'] as const, registers })
    for (const [op, results] of Object.entries(WRITE_RESULTS)) for (const result of results) this.writes.inc({ op, result }, 0)
    this.rejected = new Counter({ name: 'tlsfleet_session_store_rejected_total', help: 'Values read from the shared store that were refused, by reason (another ID, another farm, garbage)', labelNames: ['reason'] as const, registers })
    for (const reason of STORE_REJECT_REASONS) this.rejected.inc({ reason }, 0)
    new Gauge({
      name: 'tlsfleet_session_store_connected',
      help: 'Whether the client holds a ready connection to the shared session store (1) or not (0)',
      registers,
      collect () { this.set(connected() ? 1 : 0) }
    })
    new Gauge({
      name: 'tlsfleet_session_store_breaker_state',
      help: 'Circuit breakers in front of the shared store, one each for lookups, writes (SET) and deletes (DEL): 1 for the current state',
      labelNames: ['path', 'state'] as const,
      registers,
      collect () {
        for (const [path, now] of Object.entries(breakerStates())) {
          for (const state of BREAKER_STATES) this.set({ path, state }, state === now ? 1 : 0)
        }
      }
    })
  }
}
