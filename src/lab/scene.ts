import { formatHostPort } from '../config/host-port.js'
import { analyzeAct, buildTimeline, failures, formatAct, formatFailureReasons, formatTimelineHeader, formatTimelineRow, totals, type ActReport, type Failure, type SceneEvent, type TimelineRow, type Totals } from './analysis.js'
import type { LabFarm } from './farm.js'
import { cpuSecondsByRoot } from './proc-cpu.js'
import { ReturningClients, type ClientKind, type ConnectionRecord } from './returning-clients.js'

export type Act = 'kill' | 'restart' | 'drain'

export interface SceneOptions {
  /** Seconds of steady load before the first act, and between acts. */
  actSeconds: number
  acts: Act[]
  clients: number
  rate: number
  kinds?: readonly ClientKind[]
  /** Printed as the scene goes (timeline rows, events); nothing when absent. */
  print?: (line: string) => void
  /** Stop early (Ctrl-C). */
  signal?: AbortSignal
}

export interface SceneReport {
  frontend: string
  sync: string
  terminator: string
  agent: boolean
  clients: number
  rate: number
  actSeconds: number
  events: SceneEvent[]
  timeline: TimelineRow[]
  acts: ActReport[]
  totals: Totals
  /** The first failed connections (start/end in ms since the load started, node, error). */
  failures: Failure[]
  /** CPU seconds per node over the whole scene. */
  cpuSeconds: Record<string, number>
}

/**
 * The failover scene: steady returning-client load through HAProxy, then node1 is killed
 * (SIGKILL, the whole process tree), restarted (warm join), and node2 drained then stopped.
 * Every second a timeline row per node: full vs resumed handshakes, errors, CPU.
 */
export async function runFailoverScene (farm: LabFarm, opts: SceneOptions): Promise<SceneReport> {
  const print = opts.print ?? (() => {})
  const names = farm.nodes.map((n) => n.name)
  const clients = new ReturningClients({ target: farm.opts.frontend, clients: opts.clients, rate: opts.rate, ...(opts.kinds !== undefined ? { kinds: opts.kinds } : {}), maxConnections: Math.ceil(opts.rate * opts.actSeconds * (opts.acts.length * 2 + 2) * 3) })
  const feed = (line: string): void => clients.haproxyLine(line)
  const previousHook = farm.opts.onHaproxyLine
  farm.opts.onHaproxyLine = (line) => { previousHook?.(line); feed(line) }

  const events: SceneEvent[] = []
  const cpuRows: Array<Record<string, number>> = []
  const lastCpu = new Map<string, { roots: string; seconds: number }>()
  const cpuTotals: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]))
  const sampleCpu = (): Record<string, number> => {
    const roots = farm.nodes.map((n) => n.cpuRoots())
    const now = cpuSecondsByRoot(roots)
    const row: Record<string, number> = {}
    farm.nodes.forEach((node, i) => {
      const prev = lastCpu.get(node.name)
      const value = now[i] as number
      // A restarted node has new processes: its CPU counts from 0 again.
      const key = (roots[i] ?? []).join(',')
      const base = prev !== undefined && prev.roots === key ? prev.seconds : 0
      const used = Math.max(0, value - base)
      row[node.name] = used * 100
      cpuTotals[node.name] = (cpuTotals[node.name] ?? 0) + used
      lastCpu.set(node.name, { roots: key, seconds: value })
    })
    return row
  }
  sampleCpu()

  // Each act: its event, marked when it starts, and the work (which may outlast its second: a node's start).
  const plan: Array<{ at: number; start: () => { event: SceneEvent; done: Promise<unknown> } }> = []
  let t = opts.actSeconds
  const step = (start: () => { event: SceneEvent; done: Promise<unknown> }): void => { plan.push({ at: t * 1000, start }); t += opts.actSeconds }
  const mark = (kind: SceneEvent['kind'], node: string, label: string): SceneEvent => ({ at: clients.now(), kind, node, label })
  for (const act of opts.acts) {
    if (act === 'kill') step(() => { const e = mark('kill', 'node1', 'node1 killed (SIGKILL)'); return { event: e, done: farm.node('node1').kill().then(() => { e.until = clients.now() }) } })
    if (act === 'restart') step(() => ({ event: mark('restart', 'node1', 'node1 restarted (warm join)'), done: farm.node('node1').start() }))
    if (act === 'drain') {
      step(() => { const e = mark('drain', 'node2', 'node2 drained'); return { event: e, done: farm.drain('node2').then((how) => { e.label += ` (${how})` }) } })
      step(() => ({ event: mark('stop', 'node2', 'node2 stopped (SIGTERM)'), done: farm.node('node2').stop() }))
    }
  }
  const totalSeconds = t

  print(`failover scene: ${opts.clients} returning clients, ~${opts.rate} connections/s through haproxy ${formatHostPort(farm.opts.frontend)}; acts every ${opts.actSeconds} s`)
  print(formatTimelineHeader(names))
  clients.start()
  let printed = 0
  // `last`: the scene is over, and the last row takes what ended after it, as the report's does.
  const printReady = (upTo: number, last = false): void => {
    const rows = buildTimeline(clients.records, names, upTo, cpuRows, events, last)
    for (; printed < upTo; printed++) print(formatTimelineRow(rows[printed] as TimelineRow, names))
  }
  let next = 0
  // Acts run one after another, beside the seconds: one that outlasts its second (a node's start)
  // must not stretch that row's CPU sample over two seconds and squeeze the next one to nothing.
  let acting: Promise<unknown> = Promise.resolve()
  for (let second = 1; second <= totalSeconds; second++) {
    if (opts.signal?.aborted === true) break
    // Acts due in this second start when their time comes; the CPU sample closes the second.
    const due = plan[next]
    const until = second * 1000
    if (due !== undefined && due.at < until) {
      await sleepUntil(clients, due.at)
      acting = acting.then(() => {
        const { event, done } = due.start()
        events.push(event)
        return done
      })
      next++
    }
    await sleepUntil(clients, until)
    cpuRows.push(sampleCpu())
    // A row is printed one second late, so the HAProxy log lines of its connections are in.
    if (second >= 2) printReady(second - 1)
  }
  await acting
  await clients.stop()
  await new Promise((resolve) => setTimeout(resolve, 300)) // last HAProxy log lines
  farm.opts.onHaproxyLine = previousHook
  const seconds = cpuRows.length
  printReady(seconds, true)

  const acts = events.map((event, i) => analyzeAct(clients.records, event, events[i + 1]?.at ?? seconds * 1000))
  const report: SceneReport = {
    frontend: formatHostPort(farm.opts.frontend),
    sync: farm.opts.sync ?? 'unicast',
    terminator: farm.opts.terminator ?? 'tlsfleet',
    agent: farm.agent,
    clients: opts.clients,
    rate: opts.rate,
    actSeconds: opts.actSeconds,
    events,
    timeline: buildTimeline(clients.records, names, seconds, cpuRows, events),
    acts,
    totals: totals(clients.records),
    failures: failures(clients.records),
    cpuSeconds: Object.fromEntries(Object.entries(cpuTotals).map(([k, v]) => [k, Math.round(v * 1000) / 1000]))
  }
  print('')
  print('summary')
  for (const act of acts) print(`  ${formatAct(act)}`)
  const tt = report.totals
  print(`  all: ${tt.connections} connections, ${tt.errors} errors, ${tt.full} full and ${tt.resumed} resumed handshakes; returning clients resumed ${tt.returningResumed} of ${tt.returning} times (${pct(tt.returningResumed, tt.returning)})`)
  if (report.failures.length > 0) print(`  errors by reason${tt.errors > report.failures.length ? ` (first ${report.failures.length})` : ''}: ${formatFailureReasons(report.failures)}`)
  print(`  node CPU seconds: ${Object.entries(report.cpuSeconds).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`)
  return report
}

function pct (a: number, b: number): string { return b === 0 ? '-' : `${((a / b) * 100).toFixed(1)}%` }

async function sleepUntil (clients: ReturningClients, ms: number): Promise<void> {
  const wait = ms - clients.now()
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
}

export type { ConnectionRecord }
