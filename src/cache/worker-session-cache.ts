import { SessionStore, type SessionEntry } from './session-store.js'
import type { WorkerMetrics } from '../metrics/worker-metrics.js'

/** How a worker talks to the primary's L2 (the cluster IPC channel in production). */
export interface L2Channel {
  sendNew (id: Buffer, entry: SessionEntry): void
  sendDel (id: Buffer): void
  /** Ask the primary; resolves null on a miss. Rejections count as misses. */
  requestGet (id: Buffer): Promise<SessionEntry | null>
}

/**
 * The worker's side of the two-level cache. New sessions go into L1 and, fire-and-forget, to
 * L2. A lookup that misses L1 asks L2 but never waits longer than `getTimeoutMs`: past that
 * the handshake goes on as a full one, which costs CPU but never a stalled client.
 */
export class WorkerSessionCache {
  readonly l1: SessionStore

  constructor (
    private readonly opts: { l1Size: number; lifetimeSeconds: number; getTimeoutMs: number },
    private readonly l2: L2Channel,
    private readonly metrics: WorkerMetrics
  ) {
    // The byte bound is only there so the store counts bytes (for /v1/cache); entries bound L1.
    this.l1 = new SessionStore({ maxEntries: opts.l1Size, maxBytes: Number.MAX_SAFE_INTEGER, lifetimeSeconds: opts.lifetimeSeconds })
  }

  /** New: called from the TLS `newSession` event; never blocks the handshake. */
  add (id: Buffer, der: Buffer, createdAt = Math.floor(Date.now() / 1000)): void {
    const entry = { der, createdAt }
    this.l1.set(id, entry)
    this.l2.sendNew(id, entry)
  }

  /**
   * Get: L1, then L2 with a deadline. An L1 hit answers at once (no promise: it is the
   * resumption path of every returning client of this worker); an L1 miss resolves the DER
   * L2 had, or null.
   */
  lookup (id: Buffer): Buffer | Promise<Buffer | null> {
    const local = this.l1.get(id)
    if (local !== undefined) {
      this.metrics.cacheLookup('l1', 'hit')
      return local.der
    }
    this.metrics.cacheLookup('l1', 'miss')
    return this.lookupL2(id)
  }

  private async lookupL2 (id: Buffer): Promise<Buffer | null> {
    const remote = await this.withDeadline(this.l2.requestGet(id))
    if (remote === undefined) {
      this.metrics.cacheGetTimeout()
      this.metrics.cacheLookup('l2', 'miss')
      return null
    }
    if (remote === null || !this.l1.set(id, remote)) {
      this.metrics.cacheLookup('l2', 'miss')
      return null
    }
    this.metrics.cacheLookup('l2', 'hit')
    return remote.der
  }

  /** Del: the session expired or failed to resume; drop it here and node-wide. */
  invalidate (id: Buffer): void {
    this.l1.delete(id)
    this.l2.sendDel(id)
  }

  /** A Del that came from the primary (another worker or a peer node): drop our copy only. */
  forget (id: Buffer): void {
    this.l1.delete(id)
  }

  /** Resolves the value, or undefined when the deadline passes first. */
  private async withDeadline<T> (promise: Promise<T>): Promise<T | null | undefined> {
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<undefined>((resolve) => { timer = setTimeout(resolve, this.opts.getTimeoutMs, undefined) })
    try {
      return await Promise.race([promise.catch(() => null), deadline])
    } finally {
      clearTimeout(timer)
    }
  }
}
