import { fileURLToPath } from 'node:url'
import { LabError } from '../src/errors.js'
import { spawnChild } from '../src/lab/processes.js'
import { freeTcpPort } from '../src/util/free-port.js'
import { round } from './handshake.js'
import { percentile, runLoad } from './load.js'
import { PROFILES } from './profiles.js'
import type { Progress } from './progress.js'
import { table } from './report.js'
import { startBackend, startTarget } from './targets.js'

export interface LatencyStats { samples: number; failures: number; p50Ms: number; p99Ms: number; maxMs: number }
export interface AgentReport {
  handshakesPerSecondUnderLoad: number
  /** Where the node, the load (clients and backend) and the prober ran. */
  cpus: { server: string; load: string; prober: string }
  idle: { health: LatencyStats; agent: LatencyStats }
  loaded: { health: LatencyStats; agent: LatencyStats }
  /** The same with the workers --worker-nice steps below the primary. */
  niced?: { workerNice: number; handshakesPerSecondUnderLoad: number; idle: { health: LatencyStats; agent: LatencyStats }; loaded: { health: LatencyStats; agent: LatencyStats } }
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

const PROBER = fileURLToPath(new URL('./agent-prober.js', import.meta.url))

/** Runs the prober until `samples` pairs or until stop() (SIGTERM: it reports what it has). */
function startProber (adminPort: number, agentPort: number, cpus: string, samples: number): { stop: () => void; result: Promise<{ health: Array<number | null>; agent: Array<number | null> }> } {
  const child = spawnChild(process.execPath, [PROBER, String(adminPort), String(agentPort), '20', String(samples)], { cpus })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  const result = new Promise<{ health: Array<number | null>; agent: Array<number | null> }>((resolve, reject) => {
    child.once('exit', (code) => {
      try { resolve(JSON.parse(out) as { health: Array<number | null>; agent: Array<number | null> }) } catch { reject(new LabError(`agent suite: the prober failed (exit ${String(code)})`)) }
    })
  })
  return { stop: () => child.kill('SIGTERM'), result }
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
  const level = await measureAgent(opts, [])
  const niced = await measureAgent(opts, ['--worker-nice', String(AGENT_SUITE_WORKER_NICE)])
  return { ...level, niced: { workerNice: AGENT_SUITE_WORKER_NICE, handshakesPerSecondUnderLoad: niced.handshakesPerSecondUnderLoad, idle: niced.idle, loaded: niced.loaded } }
}

async function measureAgent (opts: Parameters<typeof runAgentSuite>[0], extraArgs: string[]): Promise<Omit<AgentReport, 'niced'>> {
  const taken = new Set<number>()
  const adminPort = await freeTcpPort('127.0.0.1', taken)
  const agentPort = await freeTcpPort('127.0.0.1', taken)
  const plan = agentCpuPlan(opts.serverCpus, opts.clientCpus)
  const backend = await startBackend(plan.load)
  const target = await startTarget('tlsfleet', {
    pem: opts.pem, backendPort: backend.port, cpus: opts.serverCpus, workers: opts.workers, dir: opts.dir, adminPort,
    tlsfleetArgs: ['--agent-listen', `127.0.0.1:${agentPort}`, ...extraArgs]
  })
  const label = extraArgs.length > 0 ? extraArgs.join(' ') : 'workers level with the primary'
  try {
    const idle = await startProber(adminPort, agentPort, plan.prober, 100).result
    const loadedProber = { current: undefined as ReturnType<typeof startProber> | undefined }
    const load = await runLoad({
      host: '127.0.0.1', port: target.port, profile: PROFILES.find((p) => p.name === 'full-1.2') as NonNullable<typeof PROFILES[0]>,
      processes: opts.processes, concurrency: opts.concurrency, count: 1_000_000, durationMs: opts.durationMs, request: true, cpus: plan.load,
      // Probing starts once the clients are primed and the window opens.
      onStart: () => { loadedProber.current = startProber(adminPort, agentPort, plan.prober, 100_000) },
      onProgress: (done, errors) => opts.progress.update(`agent suite (${label}): ${done} full handshakes, ${errors} errors`)
    })
    loadedProber.current?.stop()
    const loaded = await (loadedProber.current?.result ?? Promise.resolve({ health: [], agent: [] }))
    const report = {
      handshakesPerSecondUnderLoad: round(load.handshakesPerSecond, 0),
      cpus: { server: opts.serverCpus, load: plan.load, prober: plan.prober },
      idle: { health: stats(idle.health), agent: stats(idle.agent) },
      loaded: { health: stats(loaded.health), agent: stats(loaded.agent) }
    }
    opts.progress.line(`agent suite (${label}): /health p99 idle ${report.idle.health.p99Ms} ms, loaded ${report.loaded.health.p99Ms} ms; agent p99 idle ${report.idle.agent.p99Ms} ms, loaded ${report.loaded.agent.p99Ms} ms`)
    return report
  } finally {
    await target.stop()
    await backend.stop()
  }
}

export function agentTable (r: AgentReport): string {
  const rows: Array<Array<string | number>> = []
  const runs = [{ workers: 'level', run: r }, ...(r.niced !== undefined ? [{ workers: `--worker-nice ${r.niced.workerNice}`, run: r.niced }] : [])]
  for (const { workers, run } of runs) {
    for (const [what, key] of [['GET /health', 'health'], ['agent-check', 'agent']] as const) {
      const idle = run.idle[key]
      const loaded = run.loaded[key]
      rows.push([what, workers, run.handshakesPerSecondUnderLoad, idle.p50Ms, idle.p99Ms, loaded.p50Ms, loaded.p99Ms, `${loaded.failures}/${loaded.samples}`])
    }
  }
  return [
    table(['probe', 'workers', 'loaded full hs/s', 'idle p50 ms', 'idle p99 ms', 'loaded p50 ms', 'loaded p99 ms', 'failed'], rows),
    '',
    `node on CPUs ${r.cpus.server}, clients and backend on ${r.cpus.load}, prober alone on ${r.cpus.prober}`
  ].join('\n')
}
