import type { ChartMarker, ReportDocument, ReportSection, TimeSeriesSection } from '../report/report-document.js'
import { formatAct, formatFailureReasons, formatTimelineHeader, formatTimelineRow } from './analysis.js'
import type { SceneReport } from './scene.js'

function pct (a: number, b: number): string { return b === 0 ? '-' : `${((a / b) * 100).toFixed(1)} %` }

/**
 * The failover scene as an HTML report's document: per node, full vs resumed handshakes per
 * second with the kill, restart, drain and stop marked (strong on the node they concern); the
 * farm's total; CPU per node; the acts' summary and the timeline as the terminal printed it.
 */
export function sceneReportDocument (report: SceneReport, generatedAt = new Date()): ReportDocument {
  const timeline = report.timeline
  const nodes = Object.keys(timeline[0]?.nodes ?? {})
  // A row counts the connections that ended during second t (1 = the first second).
  const x = timeline.map((row) => row.t)
  const markers = (node?: string): ChartMarker[] => report.events.map((e) => ({
    x: Math.round(e.at / 100) / 10,
    label: e.label.replace(/ \(.*\)$/, ''),
    ...(node !== undefined && e.node === node ? { emphasis: true } : {})
  }))
  const column = (pick: (row: SceneReport['timeline'][number]) => number): number[] => timeline.map(pick)
  const t = report.totals

  const perNode: TimeSeriesSection[] = nodes.map((node) => ({
    kind: 'timeseries',
    title: `${node}: handshakes per second`,
    xLabel: 'seconds',
    yLabel: 'handshakes / s',
    x,
    series: [
      { label: 'full', color: 'full', values: column((r) => r.nodes[node]?.full ?? 0) },
      { label: 'resumed', color: 'resumed', values: column((r) => r.nodes[node]?.resumed ?? 0) },
      { label: 'errors', color: 'errors', values: column((r) => r.nodes[node]?.errors ?? 0) }
    ],
    markers: markers(node),
    compact: true
  }))

  const sum = (field: 'full' | 'resumed' | 'errors') => (row: SceneReport['timeline'][number]): number =>
    Object.values(row.nodes).reduce((total, cell) => total + cell[field], 0) + (field === 'errors' ? row.unrouted : 0)

  const sections: ReportSection[] = [
    {
      kind: 'facts',
      title: 'The scene',
      items: [
        ['farm', `HAProxy on ${report.frontend}, ${nodes.length} nodes (${nodes.join(', ')}), TLS terminated by ${report.terminator}, sync ${report.sync}, agent-check ${report.agent ? 'on' : 'off'}`],
        ['load', `${report.clients} returning clients, ~${report.rate} connections/s; acts every ${report.actSeconds} s`],
        ['connections', `${t.connections} (${t.errors} errors): ${t.full} full and ${t.resumed} resumed handshakes`],
        ...(report.failures.length > 0 ? [['errors by reason', formatFailureReasons(report.failures)] as [string, string]] : []),
        ['returning clients resumed', `${t.returningResumed} of ${t.returning} times (${pct(t.returningResumed, t.returning)})`],
        ['node CPU seconds', Object.entries(report.cpuSeconds).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')],
        ...report.acts.map((act): [string, string] => [act.event.label, act.event.kind === 'restart'
          ? `${act.clients} returning clients reached it with a session it never issued: ${act.resumed} resumed (${pct(act.resumed, act.resumed + act.full)})`
          : `${act.clients} of its clients came back; ${act.resumed + act.full} reconnected on another node: ${act.resumed} resumed (${pct(act.resumed, act.resumed + act.full)}), ${act.full} full`])
      ]
    },
    ...perNode,
    {
      kind: 'timeseries',
      title: 'The whole farm: handshakes per second',
      note: 'All nodes together; errors include connections HAProxy could not route.',
      xLabel: 'seconds',
      yLabel: 'handshakes / s',
      x,
      series: [
        { label: 'full', color: 'full', values: column(sum('full')) },
        { label: 'resumed', color: 'resumed', values: column(sum('resumed')) },
        { label: 'errors', color: 'errors', values: column(sum('errors')) }
      ],
      markers: markers()
    },
    {
      kind: 'timeseries',
      title: 'CPU per node',
      note: 'Each node\'s primary and workers, from /proc, per second.',
      xLabel: 'seconds',
      yLabel: 'CPU %',
      x,
      series: nodes.map((node, i) => ({ label: node, color: i, values: column((r) => r.nodes[node]?.cpuPercent ?? 0) })),
      markers: markers()
    },
    {
      kind: 'text',
      title: 'Timeline and summary, as printed',
      text: [formatTimelineHeader(nodes), ...timeline.map((row) => formatTimelineRow(row, nodes)), '', ...report.acts.map(formatAct)].join('\n')
    }
  ]
  return {
    title: 'tlsfleet lab: failover scene',
    subtitle: `Returning clients through HAProxy while ${report.events.map((e) => e.label.replace(/ \(.*\)$/, '')).join(', then ') || 'nothing happens'}.`,
    generatedAt: generatedAt.toISOString(),
    sections
  }
}
