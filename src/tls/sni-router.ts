/**
 * Maps an SNI host name to the value registered for it (a ready SecureContext in workers):
 * exact names first, then a wildcard one label up (`*.example.com` covers `a.example.com`,
 * not `example.com` nor `a.b.example.com`). The first registration of a name wins, so the
 * order of --cert decides overlaps. Lookups are two Map reads: nothing per handshake is
 * parsed, read from disk, or asked of another process.
 */
export class SniRouter<T> {
  private readonly exact = new Map<string, T>()
  /** By parent name; several only when one excludes names (crt-list `!name`): the first that does not exclude the name wins. */
  private readonly wildcard = new Map<string, Array<{ value: T; excluded?: ReadonlySet<string> }>>()

  constructor (readonly fallback: T) {}

  /** `excluded`: names a wildcard registration does not cover (an exact name ignores it). */
  add (name: string, value: T, excluded: readonly string[] = []): void {
    const lower = name.toLowerCase()
    if (lower.startsWith('*.')) {
      const parent = lower.slice(2)
      const list = this.wildcard.get(parent)
      const entry = excluded.length > 0 ? { value, excluded: new Set(excluded.map((n) => n.toLowerCase())) } : { value }
      if (list === undefined) this.wildcard.set(parent, [entry])
      // An entry excluding nothing ends the list: nothing after it is ever reached.
      else if (list.every((e) => e.excluded !== undefined)) list.push(entry)
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
    return new Set([this.fallback, ...this.exact.values(), ...[...this.wildcard.values()].flatMap((list) => list.map((e) => e.value))])
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
    const list = dot > 0 ? this.wildcard.get(name.slice(dot + 1)) : undefined
    if (list === undefined) return undefined
    for (const entry of list) if (entry.excluded?.has(name) !== true) return entry.value
    return undefined
  }
}
