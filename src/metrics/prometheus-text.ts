/**
 * Sum of a metric's samples whose labels include `labels`, read from Prometheus text format
 * (what /metrics serves). For the lab, the bench and tests; not a full exposition parser.
 */
export function sumMetric (text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const match = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line)
    if (match === null || match[1] !== name) continue
    const have = Object.fromEntries([...(match[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]))
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(match[4])
  }
  return sum
}

/**
 * Every counter and histogram series of a /metrics page by `name{labels}` (labels as written):
 * the series that must never go backwards between two scrapes.
 */
export function counterSeries (text: string): Map<string, number> {
  const kinds = new Map<string, string>()
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) kinds.set(m[1] as string, m[2] as string)
  const series = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line)
    if (m === null) continue
    const name = m[1] as string
    const family = kinds.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '')
    const kind = kinds.get(family)
    if (kind === 'counter' || kind === 'histogram') series.set(`${name}${m[2] ?? ''}`, Number(m[3]))
  }
  return series
}

/** The series of `before` that are lower in `after` (gone counts as 0). */
export function countersBackwards (before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): Array<{ series: string; before: number; after: number }> {
  const out: Array<{ series: string; before: number; after: number }> = []
  for (const [series, value] of before) {
    const now = after.get(series) ?? 0
    if (now < value) out.push({ series, before: value, after: now })
  }
  return out
}
