/**
 * Connections still in their PROXY header or TLS handshake, per client address, capped
 * (--max-handshakes-per-source): one address cannot hold the handshake slots of a worker with
 * connections it never completes. Exists only when the cap is set; a completed handshake or a
 * closed connection gives its slot back.
 */
export class SourceLimiter {
  private readonly open = new Map<string, number>()

  constructor (readonly limit: number) {}

  /** Counts a connection from `source` in; false (nothing counted) when it already holds `limit`. */
  admit (source: string): boolean {
    const held = this.open.get(source) ?? 0
    if (held >= this.limit) return false
    this.open.set(source, held + 1)
    return true
  }

  release (source: string): void {
    const held = this.open.get(source)
    if (held === undefined) return
    if (held <= 1) this.open.delete(source)
    else this.open.set(source, held - 1)
  }

  /** Addresses with a connection in the handshake now. */
  get sources (): number { return this.open.size }
}
