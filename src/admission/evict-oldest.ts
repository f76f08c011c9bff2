import type net from 'node:net'

/**
 * The open connections of a control port (the agent's, the admin API's), at most `max`: a new
 * one evicts the oldest instead of being refused, since the newest is the likelier to be HAProxy
 * or the operator, and an idle or dripping peer must not keep them out.
 */
export class EvictOldest {
  // Insertion-ordered: the first entry is the oldest.
  private readonly open = new Set<net.Socket>()

  constructor (private readonly max: number, private readonly onEvicted: () => void) {}

  /** Track a newly accepted socket, destroying the oldest first when the bound is reached. */
  add (socket: net.Socket): void {
    if (this.open.size >= this.max) {
      const oldest = this.open.values().next().value
      if (oldest !== undefined) {
        this.open.delete(oldest)
        oldest.destroy()
        this.onEvicted()
      }
    }
    this.open.add(socket)
    socket.on('close', () => this.open.delete(socket))
  }

  get size (): number { return this.open.size }

  destroyAll (): void {
    for (const socket of this.open) socket.destroy()
  }
}
