import { formatHostPort, type HostPort } from '../config/host-port.js'
import { checkListenAddresses } from '../node/listen-check.js'
import { LabFarm, type SyncMode, type TerminatorMode } from './farm.js'
import { LabError, UsageError } from '../errors.js'
import { writeHtmlReport } from '../report/html-report.js'
import { runFailoverScene, type Act, type SceneReport } from './scene.js'
import { sceneReportDocument } from './scene-report.js'
import { CLIENT_KINDS, ReturningClients, type ClientKind } from './returning-clients.js'
import { StatusLine } from './status.js'

export interface LabOptions {
  listen: HostPort
  sync: SyncMode
  /** Who terminates TLS on the nodes: tlsfleet, a local HAProxy each, or mixed. */
  terminator: TerminatorMode
  workers: number
  cert?: string
  agent: 'on' | 'off'
  failover: boolean
  acts: Act[]
  actSeconds: number
  clients: number
  rate: number
  kinds: ClientKind[]
  /** Plain mode: also run the returning-client load. */
  load: boolean
  /** Plain mode: stop after this many seconds (0 = until Ctrl-C). */
  duration: number
  json: boolean
  /** No farm: only the returning-client load against this address (the compose load client). */
  target?: HostPort
  /** With failover: write the scene as a self-contained HTML report to this file. */
  report?: string
}

export const ACTS: readonly Act[] = ['kill', 'restart', 'drain']

/**
 * `tlsfleet lab`: the farm of docker-compose.yml as local processes. Human output goes to
 * stdout, or to stderr with --json (stdout then carries only the JSON report).
 */
export async function runLab (opts: LabOptions): Promise<SceneReport | undefined> {
  // HAProxy binds --listen last, after the backends and three nodes have started (and with
  // SO_REUSEPORT it would share a port another HAProxy holds): a busy address is refused here,
  // before anything starts, as a node refuses its own --listen.
  if (opts.target === undefined) await checkListenAddresses([opts.listen], '--listen')
  const out = (line: string): void => { (opts.json ? process.stderr : process.stdout).write(line + '\n') }
  const tty = !opts.json && process.stdout.isTTY === true
  const abort = new AbortController()
  let interrupted = 0
  const onSignal = (): void => {
    interrupted++
    if (interrupted > 1) { out('second interrupt: exiting now'); process.exit(130) }
    out(tty ? '\nstopping the lab (Ctrl-C again to force)...' : 'stopping the lab...')
    abort.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  if (opts.target !== undefined) {
    try {
      await runLoadOnly(opts.target, opts, out, abort.signal)
    } finally {
      process.removeListener('SIGINT', onSignal)
      process.removeListener('SIGTERM', onSignal)
    }
    return undefined
  }

  const farm = new LabFarm({ frontend: opts.listen, sync: opts.sync, terminator: opts.terminator, workersPerNode: opts.workers, agent: opts.agent, ...(opts.cert !== undefined ? { cert: opts.cert } : {}), log: (m) => out(`lab: ${m}`) })
  try {
    out(`lab: starting haproxy, 3 nodes (${describeTerminator(opts.terminator)}, sync ${opts.sync}) and 2 demo backends on loopback...`)
    await farm.start()
    if (abort.signal.aborted) return undefined
    out(`lab: ready. Try: curl -k https://${formatHostPort(opts.listen)}/`)
    if (opts.failover) {
      const report = await runFailoverScene(farm, { actSeconds: opts.actSeconds, acts: opts.acts, clients: opts.clients, rate: opts.rate, kinds: opts.kinds, print: out, signal: abort.signal })
      if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n')
      if (opts.report !== undefined) {
        writeHtmlReport(opts.report, sceneReportDocument(report), report)
        out(`lab: HTML report written to ${opts.report}`)
      }
      return report
    }
    await runStatus(farm, opts, out, tty, abort.signal)
    return undefined
  } finally {
    await farm.stop()
    out('lab: stopped (haproxy, nodes and backends are gone)')
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
  }
}

async function runStatus (farm: LabFarm, opts: LabOptions, out: (line: string) => void, tty: boolean, signal: AbortSignal): Promise<void> {
  let clients: ReturningClients | undefined
  // Counted as they come, nothing kept: the run may last for days.
  const load = { connections: 0, errors: 0 }
  if (opts.load) {
    clients = new ReturningClients({
      target: opts.listen, clients: opts.clients, rate: opts.rate, kinds: opts.kinds, keepRecords: false,
      onRecord: (r) => { load.connections++; if (!r.ok) load.errors++ }
    })
    clients.start()
  }
  const status = new StatusLine(farm)
  const started = Date.now()
  let lastPrinted = 0
  out(tty ? 'lab: live status below; Ctrl-C stops everything' : 'lab: status every 5 s; SIGINT/SIGTERM stops everything')
  while (!signal.aborted && (opts.duration === 0 || Date.now() - started < opts.duration * 1000)) {
    await new Promise((resolve) => { const t = setTimeout(resolve, 1000); signal.addEventListener('abort', () => { clearTimeout(t); resolve(undefined) }, { once: true }) })
    if (signal.aborted) break
    const line = await status.render()
    const loadText = clients !== undefined ? ` | load ${load.connections} conns, ${load.errors} errors` : ''
    const text = `[${Math.round((Date.now() - started) / 1000)}s] ${line}${loadText}`
    if (tty) process.stdout.write(`\r\x1b[K${text}`)
    else if (Date.now() - lastPrinted >= 5000) { out(text); lastPrinted = Date.now() }
  }
  if (tty) process.stdout.write('\n')
  await clients?.stop()
}

function describeTerminator (mode: TerminatorMode): string {
  if (mode === 'haproxy') return 'TLS by a local haproxy on each, tlsfleet companions'
  if (mode === 'mixed') return 'node1 and node3 TLS by a local haproxy, node2 by tlsfleet'
  return 'TLS by tlsfleet'
}

export function parseActs (text: string): Act[] {
  const acts = text.split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const act of acts) if (!ACTS.includes(act as Act)) throw new UsageError(`--acts: unknown act "${act}" (expected a comma-separated list of ${ACTS.join(', ')})`)
  if (acts.includes('restart') && !acts.includes('kill')) throw new UsageError('--acts: "restart" needs "kill" before it')
  return acts as Act[]
}

export function parseKinds (text: string): ClientKind[] {
  const kinds = text.split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const kind of kinds) if (!CLIENT_KINDS.includes(kind as ClientKind)) throw new UsageError(`--clients-kind: unknown kind "${kind}" (expected ${CLIENT_KINDS.join(', ')})`)
  if (kinds.length === 0) throw new UsageError('--clients-kind: give at least one kind')
  return kinds as ClientKind[]
}

/**
 * The load client alone (docker compose's `load` service): returning clients against
 * `target`, one line per second with what the clients saw. Node attribution needs HAProxy's
 * log, so here only the client's view is shown: full vs resumed handshakes and errors.
 */
async function runLoadOnly (target: HostPort, opts: LabOptions, out: (line: string) => void, signal: AbortSignal): Promise<void> {
  // Each second's connections, counted as they come and then dropped: the run may last for days.
  let batch = { connections: 0, resumed: 0, full: 0, errors: 0, sample: undefined as string | undefined }
  const clients = new ReturningClients({
    target, clients: opts.clients, rate: opts.rate, kinds: opts.kinds, keepRecords: false,
    onRecord: (r) => {
      batch.connections++
      if (!r.ok) { batch.errors++; batch.sample ??= r.error } else if (r.resumed) batch.resumed++
      else batch.full++
    }
  })
  out(`load: ${opts.clients} returning clients, ~${opts.rate} connections/s against ${formatHostPort(target)}`)
  clients.start()
  const started = Date.now()
  while (!signal.aborted && (opts.duration === 0 || Date.now() - started < opts.duration * 1000)) {
    await new Promise((resolve) => { const t = setTimeout(resolve, 1000); signal.addEventListener('abort', () => { clearTimeout(t); resolve(undefined) }, { once: true }) })
    const b = batch
    batch = { connections: 0, resumed: 0, full: 0, errors: 0, sample: undefined }
    out(`[${Math.round((Date.now() - started) / 1000)}s] ${b.connections} connections: ${b.resumed} resumed, ${b.full} full, ${b.errors} errors${b.sample !== undefined ? ` (${b.sample})` : ''}`)
  }
  await clients.stop()
}
