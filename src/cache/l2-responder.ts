import type { LowerLevelLookup, PrimarySessionCache } from './primary-session-cache.js'
import type { SessionEntry } from './session-store.js'

/** New and Del: what a worker tells L2 without waiting for an answer. */
export type SessionUpdate =
  | { t: 'session-new'; id: Buffer; der: Buffer; createdAt: number }
  | { t: 'session-del'; id: Buffer }

/**
 * What a worker's L1 asks of L2 (New, Get, Del), over the cluster IPC channel. New and Del made
 * during one turn of the worker's event loop arrive as one batch, in order.
 */
export type L1Request =
  | SessionUpdate
  | { t: 'session-batch'; updates: SessionUpdate[] }
  | { t: 'session-get'; req: number; id: Buffer }

/** What L2 tells a worker's L1: the answer to a Get, or a session to drop. */
export type L2Notice =
  | { t: 'session-reply'; req: number; der: Buffer | null; createdAt: number }
  | { t: 'session-del'; id: Buffer }

export interface L1Channels {
  /** To the worker that asked. */
  reply: (worker: number, notice: L2Notice) => void
  /** To every worker but `except`. */
  broadcast: (notice: L2Notice, except?: number) => void
  /** A Get answered "no session" at once: the worker has MAX_PENDING_GETS waiting already. */
  tooManyGets?: (worker: number) => void
  /** A Del dropped: the worker is past DELS_PER_SECOND. */
  tooManyDels?: (worker: number) => void
}

/**
 * Gets of one worker that L2 holds at once (waiting for --cache-miss-wait, or for the store):
 * each costs the primary a timer and its closures (~1.3 KB), and a worker in a loop sent 300k
 * in 4 s (the primary grew by 400 MB with --cache-miss-wait 999). A worker waits for at most
 * --cache-get-timeout (25 ms) per handshake: 1024 is 40k handshakes a second each missing L1.
 */
export const MAX_PENDING_GETS = 1024

/**
 * Dels one worker may have applied, per second on average (a burst of as many at once). A Del
 * reaches every other worker and, through the sync, every peer and its workers: 100k Dels from
 * one worker in a loop were 100k sealed updates accepted by the peer, whose workers' event loops
 * then read 1 (saturated). A worker drops a session only when it is bad in itself (expired, not
 * a session, a revoked client certificate's): a handful a second. One dropped here stays in L2,
 * and its next refusal asks again.
 */
export const DELS_PER_SECOND = 1000

/**
 * L2's side of the two-level cache: answers New, Get and Del from the workers. A Del also
 * reaches the other workers, so no L1 keeps offering a session OpenSSL refused. With a level
 * below (the cache's `below`), an L2 miss is answered once that level has (a hit fills L2 first); the
 * lower level bounds its own time, and the worker never waits past --cache-get-timeout anyway.
 * Without one, an L2 miss waits up to --cache-miss-wait for the session to arrive over the farm
 * sync or from another worker (PrimarySessionCache.getOrWait).
 */
export class L2Responder {
  /** Gets held per worker (cluster id), while any is. */
  private readonly pending = new Map<number, number>()
  /** Each worker's Del allowance (a token bucket): what is left, and when it was last refilled. */
  private readonly delAllowance = new Map<number, { left: number; at: number }>()
  /** Clock in ms (tests set it). */
  now: () => number = performance.now.bind(performance)

  /** `missWaitMs`: how long a Get that missed waits for the session to arrive (PrimarySessionCache.getOrWait). */
  constructor (private readonly cache: PrimarySessionCache, private readonly workers: L1Channels, private readonly missWaitMs = 0) {}

  handle (worker: number, request: L1Request): void {
    switch (request.t) {
      case 'session-new':
        this.cache.addLocal(request.id, { der: request.der, createdAt: request.createdAt })
        break
      case 'session-get': {
        const below = this.cache.below
        const full = this.pendingOf(worker) >= MAX_PENDING_GETS
        if (below !== undefined || full) {
          const entry = this.cache.get(request.id)
          if (entry !== undefined) this.reply(worker, request.req, entry)
          else if (full) this.tooMany(worker, request.req)
          else if (below !== undefined) {
            this.hold(worker)
            void this.askBelow(worker, request.req, request.id, below)
          }
          break
        }
        const found = this.cache.getOrWait(request.id, this.missWaitMs)
        if (found instanceof Promise) {
          this.hold(worker)
          void found.then((entry) => this.replyHeld(worker, request.req, entry))
        } else {
          this.reply(worker, request.req, found)
        }
        break
      }
      case 'session-del':
        if (!this.mayDelete(worker)) {
          this.workers.tooManyDels?.(worker)
          break
        }
        this.cache.deleteLocal(request.id)
        this.workers.broadcast({ t: 'session-del', id: request.id }, worker)
        break
      case 'session-batch':
        for (const update of request.updates) this.handle(worker, update)
        break
    }
  }

  private async askBelow (worker: number, req: number, id: Buffer, below: LowerLevelLookup): Promise<void> {
    const found = await below(id).catch(() => undefined)
    if (found !== undefined) this.cache.addRemote(id, found)
    this.replyHeld(worker, req, found)
  }

  private mayDelete (worker: number): boolean {
    const now = this.now()
    // An allowance untouched for a second is full again, as one never made: dead workers' go.
    if (this.delAllowance.size > 64) for (const [w, a] of this.delAllowance) if (now - a.at >= 1000) this.delAllowance.delete(w)
    const allowance = this.delAllowance.get(worker) ?? { left: DELS_PER_SECOND, at: now }
    allowance.left = Math.min(DELS_PER_SECOND, allowance.left + (now - allowance.at) * DELS_PER_SECOND / 1000)
    allowance.at = now
    this.delAllowance.set(worker, allowance)
    if (allowance.left < 1) return false
    allowance.left--
    return true
  }

  private pendingOf (worker: number): number { return this.pending.get(worker) ?? 0 }

  private hold (worker: number): void { this.pending.set(worker, this.pendingOf(worker) + 1) }

  /** A Get over the bound: "no session" at once (a full handshake), counted. */
  private tooMany (worker: number, req: number): void {
    this.workers.tooManyGets?.(worker)
    this.reply(worker, req, undefined)
  }

  private replyHeld (worker: number, req: number, entry: SessionEntry | undefined): void {
    const pending = this.pendingOf(worker) - 1
    if (pending > 0) this.pending.set(worker, pending)
    else this.pending.delete(worker)
    this.reply(worker, req, entry)
  }

  private reply (worker: number, req: number, entry: SessionEntry | undefined): void {
    this.workers.reply(worker, { t: 'session-reply', req, der: entry?.der ?? null, createdAt: entry?.createdAt ?? 0 })
  }
}
