/**
 * How long a worker may take from its fork to listening. A worker stuck before it listens
 * (an endless loop or a blocking call while it loads or builds its TLS contexts) is never asked
 * for a report, so the hang watch cannot see it: without a deadline the node would run a
 * worker short for ever, with nothing logged.
 */

/**
 * What a start takes beyond the work --worker-hang-timeout already bounds: forking, loading the
 * code, the first messages. The contexts a worker builds at start are built again at each
 * reload, and a worker blocked longer than the hang timeout then is killed as hung anyway: a
 * start may block as long, plus this.
 */
export const START_ALLOWANCE_MS = 5000

/** The deadline with --worker-hang-timeout 0 (hung workers never killed): a start is still bounded. */
export const START_DEADLINE_WITHOUT_HANG_WATCH_MS = 60_000

/** Pure: the start deadline in ms for a node whose --worker-hang-timeout is `hangTimeoutMs` (0 or absent = never). */
export function workerStartDeadlineMs (hangTimeoutMs: number | undefined): number {
  if (hangTimeoutMs === undefined || !(hangTimeoutMs > 0)) return START_DEADLINE_WITHOUT_HANG_WATCH_MS
  return hangTimeoutMs + START_ALLOWANCE_MS
}
