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
