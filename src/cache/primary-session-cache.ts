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
  constructor (opts: { maxEntries: number; maxBytes: number; lifetimeSeconds: number; now?: () => number }) {
    super()
    this.l2 = new SessionStore({ ...opts })
  }

  /** New from one of our workers. */
  addLocal (id: Buffer, entry: SessionEntry): void {
    if (this.l2.set(id, entry)) this.emit('local-new', id, entry)
  }

  /** New from another node: a peer (authenticated by the sync layer) or the shared store (unsealed). */
  addRemote (id: Buffer, entry: SessionEntry): boolean {
    return this.l2.set(id, entry)
  }

  /** Get from a worker whose L1 missed (hits and misses are counted by the store). */
  get (id: Buffer): SessionEntry | undefined {
    return this.l2.get(id)
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
