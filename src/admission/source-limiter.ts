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
  admit (address: string): boolean {
    const source = sourceKey(address)
    const held = this.open.get(source) ?? 0
    if (held >= this.limit) return false
    this.open.set(source, held + 1)
    return true
  }

  release (address: string): void {
    const source = sourceKey(address)
    const held = this.open.get(source)
    if (held === undefined) return
    if (held <= 1) this.open.delete(source)
    else this.open.set(source, held - 1)
  }

  /** Addresses with a connection in the handshake now. */
  get sources (): number { return this.open.size }
}

/**
 * One key per client: an IPv4 client is `::ffff:a.b.c.d` to a `[::]` listener (dual-stack) and
 * `a.b.c.d` to a `0.0.0.0` one or in a PROXY header, and must not get the cap twice. Node and the
 * PROXY parser write a mapped address only so (lower case, dotted tail), so a prefix test does;
 * the dot keeps `::ffff:1` (not a mapped address) as it is.
 */
export function sourceKey (address: string): string {
  return address.startsWith('::ffff:') && address.includes('.', 7) ? address.slice(7) : address
}
