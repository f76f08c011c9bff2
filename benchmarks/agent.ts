import net from 'node:net'
import { freeTcpPort } from '../src/util/free-port.js'
import { round } from './handshake.js'
import { percentile, runLoad } from './load.js'
import { PROFILES } from './profiles.js'
import type { Progress } from './progress.js'
import { table } from './report.js'
import { startTarget } from './targets.js'

export interface LatencyStats { samples: number; failures: number; p50Ms: number; p99Ms: number; maxMs: number }
export interface AgentReport {
  handshakesPerSecondUnderLoad: number
  idle: { health: LatencyStats; agent: LatencyStats }
  loaded: { health: LatencyStats; agent: LatencyStats }
}

async function probeHealth (url: string): Promise<number | undefined> {
  const start = performance.now()
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) })
    await res.text()
    return performance.now() - start
  } catch { return undefined }
}

/** One agent-check as HAProxy makes it: connect, send "hello\n", read one line. */
async function probeAgent (port: number): Promise<number | undefined> {
  const start = performance.now()
  return await new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    const timer = setTimeout(() => { s.destroy(); resolve(undefined) }, 2000)
    let data = ''
    s.on('connect', () => s.write('hello\n'))
    s.on('data', (d: Buffer) => {
      data += d.toString()
      if (data.includes('\n')) { clearTimeout(timer); s.destroy(); resolve(performance.now() - start) }
    })
    s.on('error', () => { clearTimeout(timer); resolve(undefined) })
  })
}

function stats (values: Array<number | undefined>): LatencyStats {
  const ok = values.filter((v): v is number => v !== undefined).sort((a, b) => a - b)
  return { samples: values.length, failures: values.length - ok.length, p50Ms: round(percentile(ok, 50), 2), p99Ms: round(percentile(ok, 99), 2), maxMs: round(ok[ok.length - 1] ?? 0, 2) }
}

/**
 * tlsfleet alone, its workers saturated with TLS 1.2 full handshakes: how fast do /health (the
 * primary's admin API) and the agent-check responder answer? Both live in the primary, which
 * accepts no client connection, so they should not queue behind handshakes.
 */
export async function runAgentSuite (opts: { progress: Progress; pem: string; backendPort: number; serverCpus: string; clientCpus: string; workers: number; processes: number; concurrency: number; durationMs: number; dir: string }): Promise<AgentReport> {
  const taken = new Set<number>()
  const adminPort = await freeTcpPort('127.0.0.1', taken)
  const agentPort = await freeTcpPort('127.0.0.1', taken)
  const target = await startTarget('tlsfleet', {
    pem: opts.pem, backendPort: opts.backendPort, cpus: opts.serverCpus, workers: opts.workers, dir: opts.dir, adminPort,
    tlsfleetArgs: ['--agent-listen', `127.0.0.1:${agentPort}`]
  })
  const healthUrl = `http://127.0.0.1:${adminPort}/health`
  const probe = async (until: () => boolean, max: number): Promise<{ health: Array<number | undefined>; agent: Array<number | undefined> }> => {
    const health: Array<number | undefined> = []
    const agent: Array<number | undefined> = []
    while (!until() && health.length < max) {
      health.push(await probeHealth(healthUrl))
      agent.push(await probeAgent(agentPort))
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return { health, agent }
  }
  try {
    let n = 0
    const idle = await probe(() => n++ >= 100, 100)
    let loading = true
    const probing = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 300))
      return await probe(() => !loading, 100_000)
    })()
    const load = await runLoad({
      host: '127.0.0.1', port: target.port, profile: PROFILES.find((p) => p.name === 'full-1.2') as NonNullable<typeof PROFILES[0]>,
      processes: opts.processes, concurrency: opts.concurrency, count: 1_000_000, durationMs: opts.durationMs, request: true, cpus: opts.clientCpus,
      onProgress: (done, errors) => opts.progress.update(`agent suite: ${done} full handshakes, ${errors} errors`)
    })
    loading = false
    const loaded = await probing
    const report: AgentReport = {
      handshakesPerSecondUnderLoad: round(load.handshakesPerSecond, 0),
      idle: { health: stats(idle.health), agent: stats(idle.agent) },
      loaded: { health: stats(loaded.health), agent: stats(loaded.agent) }
    }
    opts.progress.line(`agent suite: /health p99 idle ${report.idle.health.p99Ms} ms, loaded ${report.loaded.health.p99Ms} ms; agent p99 idle ${report.idle.agent.p99Ms} ms, loaded ${report.loaded.agent.p99Ms} ms`)
    return report
  } finally {
    await target.stop()
  }
}

export function agentTable (r: AgentReport): string {
  const rows: Array<Array<string | number>> = []
  for (const [what, key] of [['GET /health', 'health'], ['agent-check', 'agent']] as const) {
    const idle = r.idle[key]
    const loaded = r.loaded[key]
    rows.push([what, idle.p50Ms, idle.p99Ms, loaded.p50Ms, loaded.p99Ms, `${loaded.failures}/${loaded.samples}`])
  }
  return table(['probe', 'idle p50 ms', 'idle p99 ms', `loaded p50 ms (${r.handshakesPerSecondUnderLoad} full hs/s)`, 'loaded p99 ms', 'failed'], rows)
}
