import { clockTicksPerSecond } from '../src/lab/proc-cpu.js'
import type { HandshakeRow } from './handshake.js'

/**
 * Server CPU is read from /proc in clock ticks (10 ms each at the usual 100 Hz): below this many
 * ticks on either side a ratio moves by whole percents with one tick, too coarse to judge a goal.
 */
export const MIN_JUDGED_TICKS = 100

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

/** Where each server's CPU per handshake went: its root process and its children, main threads and the rest. */
export function cpuSplitTable (rows: HandshakeRow[]): string {
  return table(
    ['cert', 'server', 'profile', 'server CPU µs/hs', 'root: main thread', 'root: other threads', 'children: main threads', 'children: other threads'],
    rows.map((r) => {
      const s = r.serverCpuSplitUsPerHandshake
      const parts = s === undefined ? ['-', '-', '-', '-'] : [s.rootMain, s.rootOther, s.childrenMain, s.childrenOther]
      return [r.cert, r.target, r.profile, r.serverCpuUsPerHandshake, ...parts]
    })
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

/**
 * Issue 9's goals: tlsfleet's server CPU per handshake over the plain Node terminator's ("node"),
 * per profile. A plain tls.Server cannot resume by session ID, so TLS 1.2 session-ID resumption
 * is held against its TLS 1.2 ticket resumption (the same cryptography).
 */
export const NODE_GOALS: ReadonlyArray<{ profile: string; reference: string; goal: number }> = [
  { profile: 'full-1.2', reference: 'full-1.2', goal: 1.10 },
  { profile: 'full-1.3', reference: 'full-1.3', goal: 1.10 },
  { profile: 'resume-1.2-id', reference: 'resume-1.2-ticket', goal: 1.15 },
  { profile: 'resume-1.2-ticket', reference: 'resume-1.2-ticket', goal: 1.15 },
  { profile: 'resume-1.3-ticket', reference: 'resume-1.3-ticket', goal: 1.15 }
]

/** `ticks`: the fewer clock ticks of server CPU of the two rows (MIN_JUDGED_TICKS). */
export interface NodeRatio { cert: string; profile: string; reference: string; target: string; ratio: number; roundRatios: number[]; goal: number; ticks: number }

/** tlsfleet (and tlsfleet with PROXY v2 in) over node, for every goal profile measured. */
export function nodeRatios (rows: HandshakeRow[]): NodeRatio[] {
  const out: NodeRatio[] = []
  for (const cert of [...new Set(rows.map((r) => r.cert))]) {
    const of = (target: string, profile: string): HandshakeRow | undefined => rows.find((r) => r.cert === cert && r.target === target && r.profile === profile)
    for (const { profile, reference, goal } of NODE_GOALS) {
      const node = of('node', reference)
      if (node === undefined || node.serverCpuUsPerHandshake === 0) continue
      for (const target of ['tlsfleet', 'tlsfleet-pp2']) {
        const row = of(target, profile)
        if (row === undefined || row.serverCpuUsPerHandshake === 0) continue
        const roundRatios = row.roundsUsPerHandshake.map((us, i) => us / (node.roundsUsPerHandshake[i] ?? Number.NaN)).filter((r) => Number.isFinite(r))
        const ticks = Math.round(Math.min(row.serverCpuSeconds, node.serverCpuSeconds) * clockTicksPerSecond())
        out.push({ cert, profile, reference, target, ratio: row.serverCpuUsPerHandshake / node.serverCpuUsPerHandshake, roundRatios, goal, ticks })
      }
    }
  }
  return out
}

export function nodeRatioTable (rows: HandshakeRow[]): string {
  const ratios = nodeRatios(rows)
  const cell = (r: NodeRatio | undefined): string => {
    if (r === undefined) return '-'
    const range = r.roundRatios.length > 1 ? ` (rounds ${Math.min(...r.roundRatios).toFixed(2)}-${Math.max(...r.roundRatios).toFixed(2)})` : ''
    const verdict = r.ticks < MIN_JUDGED_TICKS ? `n/a (${r.ticks} clock ticks of CPU: run longer)` : r.ratio <= r.goal ? 'ok' : 'over'
    return `${r.ratio.toFixed(2)}x${range} ${verdict}`
  }
  const keys = [...new Set(ratios.map((r) => `${r.cert}|${r.profile}`))]
  return table(['cert', 'profile', 'node reference', 'node µs/hs', 'tlsfleet µs/hs', 'tlsfleet / node', 'tlsfleet PROXY v2 in µs/hs', 'PROXY v2 in / node', 'goal'],
    keys.map((key) => {
      const [cert, profile] = key.split('|') as [string, string]
      const plain = ratios.find((r) => r.cert === cert && r.profile === profile && r.target === 'tlsfleet')
      const pp2 = ratios.find((r) => r.cert === cert && r.profile === profile && r.target === 'tlsfleet-pp2')
      const any = (plain ?? pp2) as NodeRatio
      const us = (target: string, profile: string): string => String(rows.find((x) => x.cert === cert && x.target === target && x.profile === profile)?.serverCpuUsPerHandshake ?? '-')
      return [cert, profile, any.reference, us('node', any.reference), us('tlsfleet', profile), cell(plain), us('tlsfleet-pp2', profile), cell(pp2), `≤ ${any.goal.toFixed(2)}x`]
    }))
}
