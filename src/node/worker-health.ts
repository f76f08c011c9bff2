import type { WorkerRestarts } from './restart-backoff.js'
import type { TerminatorHealth } from './terminator-part.js'

/** Seconds as an operator reads them: 0.5 s, 8 s. */
function seconds (ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`
}

/**
 * Pure: whether tlsfleet's workers serve, from how many of the `configured` listen and their
 * restarts. With none listening the reason says so, and in a crash loop also that and the
 * replacements' wait: the agent line carries it, so HAProxy's stats (agent_desc) and logs tell
 * the operator why the node stays down, not only that it has no worker.
 */
export function workerPoolHealth (listening: number, configured: number, restarts: WorkerRestarts): TerminatorHealth {
  if (listening > 0) return { serving: true, servingShare: listening / Math.max(1, configured) }
  if (!restarts.crashLoop) return { serving: false, reason: 'no live worker' }
  return { serving: false, reason: `no live worker (crash loop: replacements wait ${seconds(restarts.delayMs)})` }
}
