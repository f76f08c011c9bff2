import type { ClientKind, ConnectionRecord } from './returning-clients.js'

/** Something the scene did to a node, at `at` ms since the load started. */
export interface SceneEvent {
  at: number
  /**
   * When the act was over (a killed node's processes gone): the kernel still completes TCP
   * handshakes on a dying node's listening socket for a few ms after the SIGKILL, and HAProxy's
   * connections accepted then are cut too.
   */
  until?: number
  kind: 'kill' | 'restart' | 'drain' | 'stop'
  node: string
  label: string
}

export interface NodeSecond { full: number; resumed: number; errors: number; cpuPercent: number }
export interface TimelineRow { t: number; nodes: Record<string, NodeSecond>; unrouted: number; events: string[] }

export interface KindCounts { clients: number; resumed: number; full: number; failed: number }

/**
 * What happened to the clients an event concerned.
 * kill / drain / stop: the clients whose last connection before the event was on that node
 * ("returning clients"), and their first connection served by another node afterwards.
 * restart: the clients whose first connection after the restart reached the restarted node
 * with a session it never issued (it can only resume them through the farm).
 */
export interface ActReport {
  event: SceneEvent
  /** Returning clients concerned. */
  clients: number
  /** ... whose first connection on another node (or on the restarted node) resumed. */
  resumed: number
  /** ... which paid a full handshake there. */
  full: number
  /** ... which had no successful connection to another node within the act. */
  notMoved: number
  /** Failed connection attempts by those clients within the act. */
  failedAttempts: number
  /** Connections in flight while the event happened (from `at` to `until`) that failed (cut by a kill). */
  cut: number
  /** resumed / (resumed + full), 0 when nobody moved. */
  resumedShare: number
  byKind: Partial<Record<ClientKind, KindCounts>>
}

export function analyzeAct (records: readonly ConnectionRecord[], event: SceneEvent, windowEnd: number): ActReport {
  const byClient = new Map<number, ConnectionRecord[]>()
  for (const r of records) {
    const list = byClient.get(r.client) ?? []
    list.push(r)
    byClient.set(r.client, list)
  }
  const report: ActReport = { event, clients: 0, resumed: 0, full: 0, notMoved: 0, failedAttempts: 0, cut: 0, resumedShare: 0, byKind: {} }
  const bump = (kind: ClientKind, field: keyof KindCounts): void => {
    const counts = report.byKind[kind] ?? { clients: 0, resumed: 0, full: 0, failed: 0 }
    counts[field]++
    report.byKind[kind] = counts
  }
  for (const list of byClient.values()) {
    list.sort((a, b) => a.start - b.start)
    const after = list.filter((r) => r.start >= event.at && r.start < windowEnd)
    if (event.kind === 'restart') {
      const first = after.find((r) => r.ok && r.node === event.node && r.offered)
      if (first === undefined) continue
      report.clients++
      bump(first.kind, 'clients')
      if (first.resumed) { report.resumed++; bump(first.kind, 'resumed') } else { report.full++; bump(first.kind, 'full') }
      continue
    }
    const over = event.until ?? event.at
    for (const r of list) if (r.start < over && r.end >= event.at && !r.ok && (r.node === undefined || r.node === event.node || r.node === 'none')) report.cut++
    const before = list.filter((r) => r.start < event.at && r.ok)
    const last = before[before.length - 1]
    if (last === undefined || last.node !== event.node) continue
    report.clients++
    bump(last.kind, 'clients')
    const moved = after.find((r) => r.ok && r.node !== undefined && r.node !== event.node && r.node !== 'none')
    const failures = after.filter((r) => !r.ok && (moved === undefined || r.start < moved.start)).length
    report.failedAttempts += failures
    if (failures > 0) bump(last.kind, 'failed')
    if (moved === undefined) { report.notMoved++; continue }
    if (moved.resumed) { report.resumed++; bump(last.kind, 'resumed') } else { report.full++; bump(last.kind, 'full') }
  }
  report.resumedShare = report.resumed + report.full > 0 ? report.resumed / (report.resumed + report.full) : 0
  return report
}

/**
 * Per-second buckets (by connection end) per node; `cpu` holds per-second CPU% per node.
 * `lateIntoLast` (the finished scene): a connection that ended after the last second counts in
 * it, so the rows add up to the totals. Off for rows printed while the scene runs: those
 * connections belong to seconds not printed yet, which will count them.
 */
export function buildTimeline (records: readonly ConnectionRecord[], nodes: readonly string[], seconds: number, cpu: ReadonlyArray<Record<string, number>>, events: readonly SceneEvent[], lateIntoLast = true): TimelineRow[] {
  const rows: TimelineRow[] = []
  for (let t = 0; t < seconds; t++) {
    const row: TimelineRow = { t: t + 1, nodes: {}, unrouted: 0, events: events.filter((e) => Math.floor(e.at / 1000) === t).map((e) => e.label) }
    for (const n of nodes) row.nodes[n] = { full: 0, resumed: 0, errors: 0, cpuPercent: Math.round(cpu[t]?.[n] ?? 0) }
    rows.push(row)
  }
  for (const r of records) {
    // A connection still open when the last second closed ends in that second's row: the rows
    // add up to the totals.
    const second = Math.floor(r.end / 1000)
    if (!lateIntoLast && second >= rows.length) continue
    const row = rows[Math.min(second, rows.length - 1)]
    if (row === undefined) continue
    const cell = r.node !== undefined ? row.nodes[r.node] : undefined
    if (cell === undefined) { if (!r.ok) row.unrouted++; continue }
    if (!r.ok) cell.errors++
    else if (r.resumed) cell.resumed++
    else cell.full++
  }
  return rows
}

export interface Totals { connections: number; ok: number; errors: number; full: number; resumed: number; returning: number; returningResumed: number }

export function totals (records: readonly ConnectionRecord[]): Totals {
  const t: Totals = { connections: records.length, ok: 0, errors: 0, full: 0, resumed: 0, returning: 0, returningResumed: 0 }
  for (const r of records) {
    if (!r.ok) { t.errors++; continue }
    t.ok++
    if (r.resumed) t.resumed++
    else t.full++
    if (r.offered) { t.returning++; if (r.resumed) t.returningResumed++ }
  }
  return t
}

/** A failed connection, for the report: when it started and ended (ms), where and why. */
export interface Failure { start: number; end: number; node: string; error: string }

/** The first `limit` failed connections, so a report says why, not only how many. */
export function failures (records: readonly ConnectionRecord[], limit = 50): Failure[] {
  const out: Failure[] = []
  for (const r of records) {
    if (r.ok) continue
    out.push({ start: r.start, end: r.end, node: r.node ?? 'unknown', error: r.error ?? 'unknown' })
    if (out.length >= limit) break
  }
  return out
}

/** Failure counts by error text, most frequent first ("ECONNRESET 5, timeout 2"). */
export function formatFailureReasons (list: readonly Failure[]): string {
  const counts = new Map<string, number>()
  for (const f of list) counts.set(f.error, (counts.get(f.error) ?? 0) + 1)
  return [...counts].sort((a, b) => b[1] - a[1]).map(([reason, n]) => `${reason} ${n}`).join(', ')
}

export function formatTimelineHeader (nodes: readonly string[]): string {
  return ['   t |', ...nodes.map((n) => ` ${n.padEnd(8)} full  res err  cpu |`), ' no node err | event'].join('')
}

export function formatTimelineRow (row: TimelineRow, nodes: readonly string[]): string {
  const cells = nodes.map((n) => {
    const c = row.nodes[n] as NodeSecond
    return ` ${''.padEnd(8)} ${String(c.full).padStart(4)} ${String(c.resumed).padStart(4)} ${String(c.errors).padStart(3)} ${String(c.cpuPercent).padStart(3)}% |`
  })
  return [`${String(row.t).padStart(3)}s |`, ...cells, ` ${String(row.unrouted).padStart(11)} | ${row.events.join('; ')}`].join('')
}

export function formatAct (act: ActReport): string {
  const pct = (x: number): string => `${(x * 100).toFixed(0)}%`
  // Per kind, the clients it had: a kind whose clients did not move shows as such, not as 0/0.
  const kinds = Object.entries(act.byKind).map(([k, c]) => act.event.kind === 'restart'
    ? `${k} ${c.resumed} of ${c.clients} resumed`
    : `${k} ${c.resumed + c.full} of ${c.clients} moved, ${c.resumed} resumed`).join('; ')
  if (act.event.kind === 'restart') {
    return `${act.event.label}: ${act.clients} returning clients reached it with a session it never issued; ` +
      `${act.resumed} resumed (${pct(act.resumedShare)}), ${act.full} full handshakes [${kinds}]`
  }
  return `${act.event.label}: ${act.clients} of its clients came back; ${act.resumed + act.full} reconnected on another node: ` +
    `${act.resumed} resumed (${pct(act.resumedShare)}), ${act.full} full handshakes; ${act.notMoved} did not move within the act; ` +
    `${act.failedAttempts} failed attempts, ${act.cut} connections cut [${kinds}]`
}
