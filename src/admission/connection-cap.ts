/**
 * How many connections a worker admits: its share of --max-connections, and no more than its
 * file-descriptor limit allows. Pure arithmetic, so it is tested on its own.
 */

/** A proxied connection holds two descriptors: the client's socket and the backend's. */
export const FDS_PER_CONNECTION = 2

/**
 * Descriptors kept free beyond those open at start: the probe, a backend socket opened while
 * its client is counted, what libuv and the runtime open later. The cap leaves them free, so
 * connections alone never exhaust the limit.
 */
export const FD_RESERVE = 16

/** A node-wide figure split over the workers: each gets an equal share, at least one; 0 = none. */
export function workerShare (nodeValue: number, workers: number): number {
  if (nodeValue <= 0) return 0
  return Math.max(1, Math.floor(nodeValue / Math.max(1, workers)))
}

/** The connections a limit of `fdLimit` descriptors leaves room for, `fdsAtStart` being open already. */
export function fdConnectionCap (fdLimit: number | undefined, fdsAtStart: number): number {
  if (fdLimit === undefined || !Number.isFinite(fdLimit)) return Number.POSITIVE_INFINITY
  return Math.max(0, Math.floor((fdLimit - fdsAtStart - FD_RESERVE) / FDS_PER_CONNECTION))
}

/** Which bound decides: what a refused connection is counted as. */
export type CapBound = 'max_connections' | 'fd_limit'

export interface ConnectionCap {
  /** Connections the worker holds at most (Infinity: no bound known). */
  limit: number
  bound: CapBound
}

/** The lower of the worker's share (0 = none) and the descriptor bound. */
export function connectionCap (share: number, fdCap: number): ConnectionCap {
  if (share > 0 && share <= fdCap) return { limit: share, bound: 'max_connections' }
  return { limit: fdCap, bound: 'fd_limit' }
}
