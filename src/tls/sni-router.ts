/**
 * Maps an SNI host name to the value registered for it (a ready SecureContext in workers):
 * exact names first, then a wildcard one label up (`*.example.com` covers `a.example.com`,
 * not `example.com` nor `a.b.example.com`). The first registration of a name wins, so the
 * order of --cert decides overlaps. Lookups are two Map reads: nothing per handshake is
 * parsed, read from disk, or asked of another process.
 */
export class SniRouter<T> {
  private readonly exact = new Map<string, T>()
  private readonly wildcard = new Map<string, T>()

  constructor (readonly fallback: T) {}

  add (name: string, value: T): void {
    const lower = name.toLowerCase()
    if (lower.startsWith('*.')) {
      const parent = lower.slice(2)
      if (!this.wildcard.has(parent)) this.wildcard.set(parent, value)
    } else if (!this.exact.has(lower)) {
      this.exact.set(lower, value)
    }
  }

  /** The value for `servername`, or the fallback (the first certificate) when none matches. */
  lookup (servername: string | undefined): T {
    if (servername === undefined || servername === '') return this.fallback
    return this.match(servername) ?? this.fallback
  }

  /**
   * For `--sni-nomatch abort` (hitch's sni-nomatch-abort): like lookup, but a name that no
   * certificate covers gets undefined. A client that sends no name still gets the fallback.
   */
  lookupStrict (servername: string | undefined): T | undefined {
    if (servername === undefined || servername === '') return this.fallback
    return this.match(servername)
  }

  /** Every value registered, the fallback first, each once. */
  values (): Set<T> {
    return new Set([this.fallback, ...this.exact.values(), ...this.wildcard.values()])
  }

  /** True when some certificate names this host (used in tests and diagnostics). */
  has (servername: string): boolean {
    return this.match(servername) !== undefined
  }

  private match (servername: string): T | undefined {
    const lower = servername.toLowerCase()
    const name = lower.endsWith('.') ? lower.slice(0, -1) : lower
    const exact = this.exact.get(name)
    if (exact !== undefined) return exact
    const dot = name.indexOf('.')
    return dot > 0 ? this.wildcard.get(name.slice(dot + 1)) : undefined
  }
}
