import type { HandshakeRow } from './handshake.js'

/** A plain Markdown table (also readable in a terminal). */
export function table (header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map(String))]
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n')
}

export function handshakeTable (rows: HandshakeRow[]): string {
  return table(
    ['cert', 'server', 'profile', 'handshakes', 'hs/s', 'p50 ms', 'p95 ms', 'p99 ms', 'resumed', 'errors', 'server CPU µs/hs', 'CPU s / 1000 hs'],
    rows.map((r) => [r.cert, r.target, r.profile, r.handshakes, r.handshakesPerSecond, r.latencyMs.p50, r.latencyMs.p95, r.latencyMs.p99,
      r.resumedShare === null ? '-' : `${(r.resumedShare * 100).toFixed(1)}%`, r.errors, r.serverCpuUsPerHandshake, r.serverCpuSecondsPer1000])
  )
}

/** Server CPU per handshake of every server relative to tlsfleet's, per (cert, profile). */
export function ratioTable (rows: HandshakeRow[]): string {
  const servers = [...new Set(rows.map((r) => r.target))]
  const keys = [...new Set(rows.map((r) => `${r.cert}|${r.profile}`))]
  const out: Array<Array<string | number>> = []
  for (const key of keys) {
    const [cert, profile] = key.split('|') as [string, string]
    const of = (t: string): HandshakeRow | undefined => rows.find((r) => r.cert === cert && r.profile === profile && r.target === t)
    const base = of('tlsfleet')
    out.push([cert, profile, ...servers.map((t) => {
      const r = of(t)
      if (r === undefined || r.serverCpuUsPerHandshake === 0) return '-'
      const ratio = base !== undefined && base.serverCpuUsPerHandshake > 0 ? ` (${(r.serverCpuUsPerHandshake / base.serverCpuUsPerHandshake).toFixed(2)}x)` : ''
      return `${r.serverCpuUsPerHandshake}${ratio}`
    })])
  }
  return table(['cert', 'profile', ...servers.map((s) => `${s} µs/hs (vs tlsfleet)`)], out)
}
