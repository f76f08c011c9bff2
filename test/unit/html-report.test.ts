import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { benchReportDocument } from '../../benchmarks/html-report.js'
import type { BenchReport } from '../../benchmarks/bench-report.js'
import type { HandshakeRow } from '../../benchmarks/handshake.js'
import type { SceneReport } from '../../src/lab/scene.js'
import { sceneReportDocument } from '../../src/lab/scene-report.js'
import { checkReportPath, renderHtmlReport } from '../../src/report/html-report.js'
import type { BarsSection, ReportDocument, TimeSeriesSection } from '../../src/report/report-document.js'
import { tempDir } from '../helpers/certs.js'

const doc = (title: string): ReportDocument => ({ title, subtitle: 's', generatedAt: new Date(0).toISOString(), sections: [] })

test('a report is one file: scripts and styles inline, nothing fetched, data that cannot close its <script>', () => {
  const html = renderHtmlReport(doc('a <b> & "c"'), { evil: '</script><script>alert(1)</script>', line: '\u2028' })
  assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=/i)
  assert.match(html, /<title>a &lt;b&gt; &amp; &quot;c&quot;<\/title>/)
  assert.equal(html.match(/<\/script>/g)?.length, 3, 'only the three script elements close')
  assert.ok(html.includes('\\u003c/script>\\u003cscript>alert(1)\\u003c/script>'))
  assert.match(html, /window\.TlsfleetCharts = /)
  assert.match(html, /uPlot/)
  assert.doesNotMatch(html, /\{\{[A-Z]+\}\}/, 'every placeholder filled')
  // The data round-trips exactly as the page reads it.
  const raw = /<script type="application\/json" id="tlsfleet-raw">(.*?)<\/script>/s.exec(html)?.[1] ?? ''
  assert.deepEqual(JSON.parse(raw), { evil: '</script><script>alert(1)</script>', line: '\u2028' })
})

test('a placeholder inside the data is left as data', () => {
  const html = renderHtmlReport(doc('{{RAW}}'), '{{SCRIPT}}')
  assert.match(html, /<title>\{\{RAW\}\}<\/title>/)
  assert.match(html, /id="tlsfleet-raw">"\{\{SCRIPT\}\}"</)
})

const scene: SceneReport = {
  frontend: '127.0.0.10:8443',
  sync: 'unicast',
  terminator: 'tlsfleet',
  agent: true,
  clients: 10,
  rate: 20,
  actSeconds: 2,
  events: [{ at: 2100, kind: 'kill', node: 'node1', label: 'node1 killed (SIGKILL)' }, { at: 4050, kind: 'drain', node: 'node2', label: 'node2 drained (admin API)' }],
  timeline: [1, 2, 3, 4, 5].map((t) => ({
    t,
    unrouted: t === 3 ? 1 : 0,
    events: [],
    nodes: {
      node1: { full: t === 1 ? 2 : 0, resumed: t < 3 ? 5 : 0, errors: t === 3 ? 1 : 0, cpuPercent: 10 },
      node2: { full: 0, resumed: 6, errors: 0, cpuPercent: 12 },
      node3: { full: 1, resumed: t < 3 ? 5 : 9, errors: 0, cpuPercent: 14 }
    }
  })),
  acts: [],
  totals: { connections: 70, ok: 68, errors: 2, full: 7, resumed: 61, returning: 60, returningResumed: 60 },
  failures: [{ start: 2050, end: 2150, node: 'node1', error: 'ECONNRESET' }, { start: 2080, end: 2160, node: 'none', error: 'ECONNRESET' }],
  cpuSeconds: { node1: 0.5, node2: 0.6, node3: 0.7 }
}

test('the failover scene: a chart per node, full vs resumed per second, events marked on the node they concern', () => {
  const d = sceneReportDocument(scene, new Date(0))
  const charts = d.sections.filter((s): s is TimeSeriesSection => s.kind === 'timeseries')
  assert.deepEqual(charts.map((c) => c.title), ['node1: handshakes per second', 'node2: handshakes per second', 'node3: handshakes per second', 'The whole farm: handshakes per second', 'CPU per node'])
  const node1 = charts[0] as TimeSeriesSection
  assert.deepEqual(node1.x, [1, 2, 3, 4, 5])
  assert.deepEqual(node1.series.map((s) => [s.label, s.values]), [['full', [2, 0, 0, 0, 0]], ['resumed', [5, 5, 0, 0, 0]], ['errors', [0, 0, 1, 0, 0]]])
  assert.deepEqual(node1.markers, [{ x: 2.1, label: 'node1 killed', emphasis: true }, { x: 4.1, label: 'node2 drained' }])
  assert.deepEqual(charts[1]?.markers.map((m) => m.emphasis === true), [false, true])
  const farm = charts[3] as TimeSeriesSection
  assert.deepEqual(farm.series.map((s) => s.values), [[3, 1, 1, 1, 1], [16, 16, 15, 15, 15], [0, 0, 2, 0, 0]], 'errors include unrouted connections')
  assert.match(d.subtitle, /node1 killed, then node2 drained\.$/)
  const facts = d.sections.find((s) => s.kind === 'facts')
  assert.ok(facts?.kind === 'facts' && facts.items.some(([k, v]) => k === 'errors by reason' && v === 'ECONNRESET 2'))
  const text = d.sections.find((s) => s.kind === 'text')
  assert.match(text?.kind === 'text' ? text.text : '', /^ {3}t \| node1/)
})

function row (target: 'tlsfleet' | 'haproxy' | 'node', profile: string, us: number): HandshakeRow {
  return { cert: 'rsa', target, label: target, profile, handshakes: 100, errors: 0, seconds: 1, handshakesPerSecond: 100, latencyMs: { p50: 1, p95: 2, p99: 3 }, resumedShare: null, serverCpuSeconds: us / 10_000, serverCpuUsPerHandshake: us, serverCpuSecondsPer1000: us / 1000, roundsUsPerHandshake: [us], errorSamples: [] }
}

test('the bench: server CPU per handshake as bars per profile, noted with the ratio to tlsfleet', () => {
  const report: BenchReport = {
    machine: { cpu: 'cpu', cores: 2, kernel: 'Linux', node: 'v24', openssl: 'OpenSSL 3', serverCpus: '1', clientCpus: '0' },
    command: 'tlsfleet bench',
    settings: {},
    handshake: [row('tlsfleet', 'full-1.2', 600), row('haproxy', 'full-1.2', 450), row('tlsfleet', 'resume-1.2-id', 100), row('haproxy', 'resume-1.2-id', 0)],
    skipped: ['hitch: not installed']
  }
  const d = benchReportDocument(report, 'tables')
  const bars = d.sections.filter((s): s is BarsSection => s.kind === 'bars')
  assert.equal(bars.length, 2)
  assert.deepEqual(bars[0]?.groups, [
    { label: 'full-1.2', bars: [{ label: 'tlsfleet', value: 600 }, { label: 'haproxy', value: 450, note: '0.75× tlsfleet' }] },
    { label: 'resume-1.2-id', bars: [{ label: 'tlsfleet', value: 100 }, { label: 'haproxy', value: 0 }] }
  ])
  assert.deepEqual(bars[1]?.groups, [
    { label: 'rsa · full-1.2', bars: [{ label: 'tlsfleet', value: 1 }, { label: 'haproxy', value: 0.75 }] },
    { label: 'rsa · resume-1.2-id', bars: [{ label: 'tlsfleet', value: 1 }] }
  ], 'a server with no measured CPU has no ratio')
  const facts = d.sections[0]
  assert.ok(facts?.kind === 'facts' && facts.items.some(([k, v]) => k === 'skipped' && v === 'hitch: not installed'))
  assert.deepEqual(d.sections[d.sections.length - 1], { kind: 'text', title: 'Every table, as printed', text: 'tables' })
})

test('the bench: where the server CPU goes, as bars per profile and server, for the rows that carry the split', () => {
  const split = { ...row('tlsfleet', 'full-1.2', 600), serverCpuSplitUsPerHandshake: { rootMain: 80, rootOther: 9, childrenMain: 480, childrenOther: 31 } }
  const report: BenchReport = {
    machine: { cpu: 'cpu', cores: 2, kernel: 'Linux', node: 'v24', openssl: 'OpenSSL 3', serverCpus: '1', clientCpus: '0' },
    command: 'tlsfleet bench',
    settings: {},
    handshake: [split, { ...split, profile: 'full-1.3' }, { ...row('node', 'full-1.2', 500), serverCpuSplitUsPerHandshake: { rootMain: 470, rootOther: 30, childrenMain: 0, childrenOther: 0 } }, row('haproxy', 'full-1.2', 450)],
    skipped: []
  }
  const d = benchReportDocument(report, 'tables')
  const where = d.sections.filter((s): s is BarsSection => s.kind === 'bars' && s.title.startsWith('Where the server CPU goes'))
  assert.deepEqual(where.map((s) => s.title), ['Where the server CPU goes, rsa certificate'])
  assert.deepEqual(where[0]?.groups.map((g) => g.label), ['full-1.2 · tlsfleet', 'full-1.2 · node', 'full-1.3 · tlsfleet'], 'each profile\'s servers side by side; a row without the split has no group')
  assert.deepEqual(where[0]?.groups[0]?.bars.map((b) => [b.label, b.value]), [['root: main thread', 80], ['root: other threads', 9], ['children: main threads', 480], ['children: other threads', 31]])
  const none = benchReportDocument({ ...report, handshake: [row('tlsfleet', 'full-1.2', 600)] }, 'tables')
  assert.equal(none.sections.filter((s) => s.kind === 'bars' && s.title.startsWith('Where')).length, 0, 'no split measured, no section')
})

test('--report: a path that cannot be written is refused with the reason, before anything runs', () => {
  const dir = tempDir()
  assert.equal(checkReportPath(path.join(dir, 'r.html')), path.join(dir, 'r.html'))
  assert.throws(() => checkReportPath(path.join(dir, 'missing', 'r.html')), (err: Error & { code?: string }) => err.code === 'TLSFLEET_ERR_USAGE' && /the folder .*missing does not exist/.test(err.message))
  fs.mkdirSync(path.join(dir, 'sub'))
  assert.throws(() => checkReportPath(path.join(dir, 'sub')), /exists and is not a regular file/)
  fs.writeFileSync(path.join(dir, 'file'), '')
  assert.throws(() => checkReportPath(path.join(dir, 'file', 'r.html')), /is not a folder/)
})
