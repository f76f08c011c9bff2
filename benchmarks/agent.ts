import type { ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { LabError } from '../src/errors.js'
import { describeExit, waitForClose, waitForLine } from '../src/lab/child-waits.js'
import { spawnChild, stopChild, which } from '../src/lab/processes.js'
import { freeTcpPort } from '../src/util/free-port.js'
import { round } from './handshake.js'
import { percentile, runLoad } from './load.js'
import { PROFILES } from './profiles.js'
import type { Progress } from './progress.js'
import { table } from './report.js'
import { startBackend, startTarget } from './targets.js'

export interface LatencyStats { samples: number; failures: number; p50Ms: number; p99Ms: number; maxMs: number }
/** One responder's two answers: `GET /health` and an agent-check. */
export interface ProbeStats { health: LatencyStats; agent: LatencyStats }
/** One node measured idle, then under load, beside the reference responders probed in the same rounds. */
export interface AgentRun {
  handshakesPerSecondUnderLoad: number
  idle: ProbeStats
  loaded: ProbeStats
  /** A bare node:http server and a bare net line server on the node's CPUs (agent-reference.ts): the floor. */
  reference: { idle: ProbeStats; loaded: ProbeStats }
}
export interface AgentReport extends AgentRun {
  /** Where the node, the load (clients and backend) and the prober ran. */
  cpus: { server: string; load: string; prober: string }
  /** A SCHED_IDLE spinner kept the prober's CPU from halting (idle-spinner.ts); false when chrt was not found. */
  proberCpuKeptAwake: boolean
  /** The same with the workers --worker-nice steps below the primary. */
  niced?: AgentRun & { workerNice: number }
}

function stats (values: Array<number | null>): LatencyStats {
  const ok = values.filter((v): v is number => v !== null).sort((a, b) => a - b)
  return { samples: values.length, failures: values.length - ok.length, p50Ms: round(percentile(ok, 50), 2), p99Ms: round(percentile(ok, 99), 2), maxMs: round(ok[ok.length - 1] ?? 0, 2) }
}

/**
 * Where each part runs. The prober must have a CPU of its own: otherwise what it measures is its
 * own wait for a CPU (the clients saturate theirs). With 3 or more CPUs the first client CPU is
 * the prober's; with 2, the clients (and a backend of their own) join the server on its CPUs,
 * which keeps the workers saturated and leaves the other CPU to the prober alone.
 */
export function agentCpuPlan (serverCpus: string, clientCpus: string): { load: string; prober: string } {
  const clients = expandCpus(clientCpus)
  if (clients.length >= 2) return { load: clients.slice(1).join(','), prober: String(clients[0]) }
  return { load: serverCpus, prober: clientCpus }
}

export function expandCpus (list: string): number[] {
  return list.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number) as [number, number | undefined]
    return b === undefined ? [a] : Array.from({ length: b - a + 1 }, (_, i) => a + i)
  })
}

const HERE = path.dirname(fileURLToPath(import.meta.url))
const PROBER = path.join(HERE, 'agent-prober.js')
const REFERENCE = path.join(HERE, 'agent-reference.js')
const SPINNER = path.join(HERE, 'idle-spinner.js')

/** What one prober run measured, per responder: tlsfleet's and the reference's. */
interface Probed { tlsfleet: { health: Array<number | null>; agent: Array<number | null> }; reference: { health: Array<number | null>; agent: Array<number | null> } }

/**
 * Runs the prober until `samples` rounds or until stop() (SIGTERM: it reports what it has). Each
 * round probes tlsfleet's /health and agent and the reference's, one after the other, each
 * round starting one further (no responder always goes first after the pause).
 */
function startProber (ports: { admin: number; agent: number; reference: { http: number; line: number } }, cpus: string, samples: number, boundMs: number): { stop: () => void; result: Promise<Probed> } {
  const child = spawnChild(process.execPath, [PROBER, '20', String(samples), `http:${ports.admin}`, `line:${ports.agent}`, `http:${ports.reference.http}`, `line:${ports.reference.line}`], { cpus })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  // Bounded: a prober that neither finishes its rounds nor answers SIGTERM is stopped (child-waits.ts).
  const result = waitForClose(child, { what: 'agent suite: the prober', timeoutMs: boundMs }).then((code) => {
    try {
      const [health = [], agent = [], refHealth = [], refAgent = []] = (JSON.parse(out) as { samples: Array<Array<number | null>> }).samples
      return { tlsfleet: { health, agent }, reference: { health: refHealth, agent: refAgent } }
    } catch { throw new LabError(`agent suite: the prober ${code === 0 ? 'printed no samples' : describeExit(child)}`) }
  })
  // Rejections are the caller's (it awaits the result); not unhandled while the load runs.
  result.catch(() => {})
  return { stop: () => child.kill('SIGTERM'), result }
}

/** The reference responders, pinned to the node's CPUs at the primary's priority. */
async function startReference (cpus: string): Promise<{ ports: { http: number; line: number }; stop: () => Promise<void> }> {
  const child = spawnChild(process.execPath, [REFERENCE], { cpus })
  const stop = async (): Promise<void> => await stopChild(child, 2000)
  try {
    const line = await waitForLine(child, () => true, { what: 'agent suite: the reference responders', waitingFor: 'listening', timeoutMs: 10_000 })
    let ports: { http: number; line: number }
    try { ports = JSON.parse(line) as { http: number; line: number } } catch { throw new LabError(`agent suite: the reference responders said ${JSON.stringify(line)}`) }
    return { ports, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

/**
 * Keeps the prober's CPU from halting between probes (idle-spinner.ts, under SCHED_IDLE), so
 * the numbers are the node's answer and not the prober's own wake-up; bounded by `maxMs`.
 * Undefined when util-linux's chrt is missing (the report says so).
 */
function keepCpuAwake (cpus: string, maxMs: number): ChildProcess | undefined {
  if (which('chrt') === undefined) return undefined
  return spawnChild('chrt', ['--idle', '0', process.execPath, SPINNER, String(maxMs), String(process.pid)], { cpus })
}

/** With --worker-nice, the same measure repeated with the workers this many steps below the primary. */
export const AGENT_SUITE_WORKER_NICE = 10

/**
 * tlsfleet alone, its workers saturated with TLS 1.2 full handshakes: how fast do /health (the
 * primary's admin API) and the agent-check responder answer? Both live in the primary, which
 * accepts no client connection, so they should not queue behind handshakes. The prober runs on
 * a CPU of its own (agentCpuPlan). Measured twice, side by side: the workers at the primary's
 * priority (the default), then with --worker-nice AGENT_SUITE_WORKER_NICE.
 */
export async function runAgentSuite (opts: { progress: Progress; pem: string; serverCpus: string; clientCpus: string; workers: number; processes: number; concurrency: number; durationMs: number; dir: string }): Promise<AgentReport> {
  const plan = agentCpuPlan(opts.serverCpus, opts.clientCpus)
  // Both measures, their starts and idle probes: well within this bound, which only matters if the bench dies.
  const spinner = keepCpuAwake(plan.prober, 2 * opts.durationMs + 300_000)
  try {
    const level = await measureAgent(opts, plan, [])
    const niced = await measureAgent(opts, plan, ['--worker-nice', String(AGENT_SUITE_WORKER_NICE)])
    return {
      ...level,
      cpus: { server: opts.serverCpus, load: plan.load, prober: plan.prober },
      proberCpuKeptAwake: spinner !== undefined,
      niced: { workerNice: AGENT_SUITE_WORKER_NICE, ...niced }
    }
  } finally {
    if (spinner !== undefined) await stopChild(spinner, 2000)
  }
}

async function measureAgent (opts: Parameters<typeof runAgentSuite>[0], plan: { load: string; prober: string }, extraArgs: string[]): Promise<AgentRun> {
  const taken = new Set<number>()
  const adminPort = await freeTcpPort('127.0.0.1', taken)
  const agentPort = await freeTcpPort('127.0.0.1', taken)
  const backend = await startBackend(plan.load)
  const label = extraArgs.length > 0 ? extraArgs.join(' ') : 'workers level with the primary'
  let reference: Awaited<ReturnType<typeof startReference>> | undefined
  let target: Awaited<ReturnType<typeof startTarget>> | undefined
  try {
    reference = await startReference(opts.serverCpus)
    const ports = { admin: adminPort, agent: agentPort, reference: reference.ports }
    target = await startTarget('tlsfleet', {
      pem: opts.pem, backendPort: backend.port, cpus: opts.serverCpus, workers: opts.workers, dir: opts.dir, adminPort,
      tlsfleetArgs: ['--agent-listen', `127.0.0.1:${agentPort}`, ...extraArgs]
    })
    // 100 rounds of four probes 20 ms apart: a few seconds.
    const idle = await startProber(ports, plan.prober, 100, 60_000).result
    const loadedProber = { current: undefined as ReturnType<typeof startProber> | undefined }
    const load = await runLoad({
      host: '127.0.0.1', port: target.port, profile: PROFILES.find((p) => p.name === 'full-1.2') as NonNullable<typeof PROFILES[0]>,
      processes: opts.processes, concurrency: opts.concurrency, count: 1_000_000, durationMs: opts.durationMs, request: true, cpus: plan.load,
      // Probing starts once the clients are primed and the window opens.
      onStart: () => { loadedProber.current = startProber(ports, plan.prober, 100_000, opts.durationMs + 60_000) },
      onProgress: (done, errors) => opts.progress.update(`agent suite (${label}): ${done} full handshakes, ${errors} errors`)
    })
    loadedProber.current?.stop()
    const empty = { health: [], agent: [] }
    const loaded = await (loadedProber.current?.result ?? Promise.resolve({ tlsfleet: empty, reference: empty }))
    const both = (p: Probed['tlsfleet']): ProbeStats => ({ health: stats(p.health), agent: stats(p.agent) })
    const report: AgentRun = {
      handshakesPerSecondUnderLoad: round(load.handshakesPerSecond, 0),
      idle: both(idle.tlsfleet),
      loaded: both(loaded.tlsfleet),
      reference: { idle: both(idle.reference), loaded: both(loaded.reference) }
    }
    opts.progress.line(`agent suite (${label}): loaded p99 /health ${report.loaded.health.p99Ms} ms (reference ${report.reference.loaded.health.p99Ms}), agent ${report.loaded.agent.p99Ms} ms (reference ${report.reference.loaded.agent.p99Ms})`)
    return report
  } finally {
    await target?.stop()
    await reference?.stop()
    await backend.stop()
  }
}

export function agentTable (r: AgentReport): string {
  const rows: Array<Array<string | number>> = []
  const runs = [{ workers: 'level', run: r }, ...(r.niced !== undefined ? [{ workers: `--worker-nice ${r.niced.workerNice}`, run: r.niced }] : [])]
  for (const { workers, run } of runs) {
    for (const [what, key, bare] of [['GET /health', 'health', 'bare node:http'], ['agent-check', 'agent', 'bare net line']] as const) {
      for (const [who, idle, loaded] of [['tlsfleet primary', run.idle[key], run.loaded[key]], [`${bare} (reference)`, run.reference.idle[key], run.reference.loaded[key]]] as const) {
        rows.push([what, who, workers, run.handshakesPerSecondUnderLoad, idle.p50Ms, idle.p99Ms, loaded.p50Ms, loaded.p99Ms, `${loaded.failures}/${loaded.samples}`])
      }
    }
  }
  return [
    table(['probe', 'answered by', 'workers', 'loaded full hs/s', 'idle p50 ms', 'idle p99 ms', 'loaded p50 ms', 'loaded p99 ms', 'failed'], rows),
    '',
    `node and reference on CPUs ${r.cpus.server}, clients and backend on ${r.cpus.load}, prober alone on ${r.cpus.prober}` +
      (r.proberCpuKeptAwake ? ' (kept from halting by a SCHED_IDLE spinner)' : ' (chrt not found: the prober\'s CPU may halt between probes, and its wake-up is in these numbers)')
  ].join('\n')
}
