import { EventEmitter } from 'node:events'
import { SessionStore, type SessionEntry } from './session-store.js'

/**
 * L2: the node-wide session cache in the primary. Workers put (New), ask (Get) and remove
 * (Del) sessions here; the farm sync adds and removes the sessions of peer nodes. It emits
 * `local-new` / `local-del` for changes that came from this node's own workers, which is what
 * the sync layer sends to peers (a peer's update is never echoed back).
 */
/** A level below L2 (the shared store): asked on an L2 miss, within its own time bound. */
export type LowerLevelLookup = (id: Buffer) => Promise<SessionEntry | undefined>

export class PrimarySessionCache extends EventEmitter<{
  'local-new': [id: Buffer, entry: SessionEntry]
  'local-del': [id: Buffer]
}> {
  readonly l2: SessionStore
  /** The level below, when the node has one (set by the primary with --session-store). */
  below?: LowerLevelLookup
  /** Lookups that missed and wait for the session to arrive, by ID (latin1). */
  private readonly waiting = new Map<string, Array<(entry: SessionEntry | undefined) => void>>()

  constructor (opts: { maxEntries: number; maxBytes: number; lifetimeSeconds: number; now?: () => number }) {
    super()
    this.l2 = new SessionStore({ ...opts })
  }

  /** New from one of our workers. */
  addLocal (id: Buffer, entry: SessionEntry): void {
    if (this.l2.set(id, entry)) {
      this.wake(id, entry)
      this.emit('local-new', id, entry)
    }
  }

  /** New from another node: a peer (authenticated by the sync layer) or the shared store (unsealed). */
  addRemote (id: Buffer, entry: SessionEntry): boolean {
    const stored = this.l2.set(id, entry)
    if (stored) this.wake(id, entry)
    return stored
  }

  /** Get from a worker whose L1 missed (hits and misses are counted by the store). */
  get (id: Buffer): SessionEntry | undefined {
    return this.l2.get(id)
  }

  /**
   * Get, and on a miss wait up to `waitMs` for the session to arrive. A client that a load
   * balancer moves to another node often reconnects at once, racing its new session's way
   * here (worker → primary → UDP → this primary): the few milliseconds of a lost race would
   * otherwise cost it a full handshake. A session nobody has costs its handshake `waitMs` of
   * latency, and no CPU.
   */
  getOrWait (id: Buffer, waitMs: number): SessionEntry | undefined | Promise<SessionEntry | undefined> {
    const entry = this.l2.get(id)
    if (entry !== undefined || waitMs <= 0) return entry
    const key = id.toString('latin1')
    return new Promise((resolve) => {
      const waiters = this.waiting.get(key) ?? []
      this.waiting.set(key, waiters)
      const timer = setTimeout(() => {
        const left = this.waiting.get(key)?.filter((w) => w !== answer) ?? []
        if (left.length > 0) this.waiting.set(key, left)
        else this.waiting.delete(key)
        resolve(undefined)
      }, waitMs)
      const answer = (arrived: SessionEntry | undefined): void => {
        clearTimeout(timer)
        resolve(arrived)
      }
      waiters.push(answer)
    })
  }

  private wake (id: Buffer, entry: SessionEntry): void {
    if (this.waiting.size === 0) return
    const key = id.toString('latin1')
    const waiters = this.waiting.get(key)
    if (waiters === undefined) return
    this.waiting.delete(key)
    for (const answer of waiters) {
      // The store counted a miss; the lookup found its session after all.
      this.l2.misses--
      this.l2.hits++
      answer(entry)
    }
  }

  /** Del from one of our workers: gone here, and peers are told. */
  deleteLocal (id: Buffer): void {
    this.l2.delete(id)
    this.emit('local-del', id)
  }

  /** Del from a peer node. */
  deleteRemote (id: Buffer): boolean {
    return this.l2.delete(id)
  }
}
