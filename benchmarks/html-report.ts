import type { BarGroup, ReportDocument, ReportSection } from '../src/report/report-document.js'
import type { BenchReport } from './bench-report.js'
import type { HandshakeRow } from './handshake.js'
import type { CpuSplit } from '../src/lab/proc-cpu.js'

const BASE = 'tlsfleet'

function ratio (row: HandshakeRow, base: HandshakeRow | undefined): number | undefined {
  if (base === undefined || base.serverCpuUsPerHandshake <= 0 || row.serverCpuUsPerHandshake <= 0) return undefined
  return Math.round((row.serverCpuUsPerHandshake / base.serverCpuUsPerHandshake) * 100) / 100
}

/**
 * Server CPU per handshake as bars: per certificate, one group per profile, one bar per
 * server (noted with its ratio to tlsfleet measured in the same run); then the ratios alone.
 */
function handshakeSections (rows: HandshakeRow[]): ReportSection[] {
  const sections: ReportSection[] = []
  const certs = [...new Set(rows.map((r) => r.cert))]
  const ratioGroups: BarGroup[] = []
  for (const cert of certs) {
    const ofCert = rows.filter((r) => r.cert === cert)
    const profiles = [...new Set(ofCert.map((r) => r.profile))]
    const groups: BarGroup[] = profiles.map((profile) => {
      const ofProfile = ofCert.filter((r) => r.profile === profile)
      const base = ofProfile.find((r) => r.target === BASE)
      const ratios = ofProfile.flatMap((r) => {
        const x = ratio(r, base)
        return x === undefined ? [] : [{ label: r.target, value: x }]
      })
      if (ratios.length > 0) ratioGroups.push({ label: `${cert} · ${profile}`, bars: ratios })
      return {
        label: profile,
        bars: ofProfile.map((r) => {
          const x = ratio(r, base)
          return { label: r.target, value: r.serverCpuUsPerHandshake, ...(x !== undefined && r.target !== BASE ? { note: `${x.toFixed(2)}× tlsfleet` } : {}) }
        })
      }
    })
    sections.push({ kind: 'bars', title: `Server CPU per handshake, ${cert} certificate`, note: 'Lower is better. CPU of the server\'s whole process tree (utime + stime from /proc) over the handshakes it completed.', unit: 'µs', groups })
  }
  if (ratioGroups.length > 0) {
    sections.push({ kind: 'bars', title: 'Server CPU per handshake relative to tlsfleet', note: 'Each server against tlsfleet, measured side by side in this run: above 1 costs more CPU than tlsfleet.', unit: '×', decimals: 2, groups: ratioGroups })
  }
  return sections
}

/** Rows with each profile's servers side by side (the run measures server by server). */
function byProfile (rows: HandshakeRow[]): HandshakeRow[] {
  return [...new Set(rows.map((r) => r.profile))].flatMap((profile) => rows.filter((r) => r.profile === profile))
}

/**
 * Where each server's CPU per handshake went (rows that carry the split): per certificate, one
 * group per profile and server, one bar per part, so tlsfleet's primary and workers stand beside
 * the plain server's single process.
 */
function cpuSplitSections (rows: HandshakeRow[]): ReportSection[] {
  const split = rows.filter((r) => r.serverCpuSplitUsPerHandshake !== undefined)
  return [...new Set(split.map((r) => r.cert))].map((cert): ReportSection => ({
    kind: 'bars',
    title: `Where the server CPU goes, ${cert} certificate`,
    note: 'µs per handshake from /proc/PID/task: the root process (tlsfleet\'s primary, the plain server, HAProxy) and its children (tlsfleet\'s workers); main threads and the rest (V8\'s helpers, libuv\'s pool, HAProxy\'s threads).',
    unit: 'µs',
    groups: byProfile(split.filter((r) => r.cert === cert)).map((r) => {
      const s = r.serverCpuSplitUsPerHandshake as CpuSplit
      return {
        label: `${r.profile} · ${r.target}`,
        bars: [
          { label: 'root: main thread', value: s.rootMain },
          { label: 'root: other threads', value: s.rootOther },
          { label: 'children: main threads', value: s.childrenMain },
          { label: 'children: other threads', value: s.childrenOther }
        ]
      }
    })
  }))
}

function failoverSections (report: BenchReport): ReportSection[] {
  const rows = report.failover ?? []
  if (rows.length === 0) return []
  const kinds = [...new Set(rows.map((r) => r.kind))]
  const label = (sharing: string): string => sharing === 'shared' ? 'shared (tlsfleet sync)' : 'not shared'
  return [
    {
      kind: 'bars',
      title: 'Failover: clients of the killed node that resumed on another node',
      note: 'node1 is killed; its clients reconnect through HAProxy to node2 or node3.',
      unit: '%',
      decimals: 1,
      groups: kinds.map((kind) => ({ label: kind, bars: rows.filter((r) => r.kind === kind).map((r) => ({ label: label(r.sharing), value: Math.round(r.resumedShare * 1000) / 10, note: `${r.resumed} of ${r.reconnected}` })) }))
    },
    {
      kind: 'bars',
      title: 'Failover: the surviving nodes\' CPU per reconnection',
      note: 'Lower is better: a resumed session costs the survivors a fraction of a full handshake.',
      unit: 'µs',
      groups: kinds.map((kind) => ({ label: kind, bars: rows.filter((r) => r.kind === kind).map((r) => ({ label: label(r.sharing), value: r.survivorsCpuUsPerReconnect })) }))
    }
  ]
}

/** The bench's report as an HTML report's document; `text` is the report as the terminal prints it. */
export function benchReportDocument (report: BenchReport, text: string, generatedAt = new Date()): ReportDocument {
  const m = report.machine
  return {
    title: 'tlsfleet bench',
    subtitle: report.command,
    generatedAt: generatedAt.toISOString(),
    sections: [
      {
        kind: 'facts',
        title: 'Machine and settings',
        items: [
          ['machine', `${m.cpu}, ${m.cores} cores, ${m.kernel}`],
          ['software', [`node ${m.node}`, m.openssl, m.haproxy, m.hitch].filter((s) => s !== undefined).join('; ')],
          ['CPUs', `server ${m.serverCpus}, clients ${m.clientCpus}`],
          ['settings', JSON.stringify(report.settings)],
          ...report.skipped.map((s): [string, string] => ['skipped', s])
        ]
      },
      ...handshakeSections(report.handshake ?? []),
      ...cpuSplitSections(report.handshake ?? []),
      ...failoverSections(report),
      { kind: 'text', title: 'Every table, as printed', text }
    ]
  }
}
