import { fork, spawnSync, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { WorkerConfig, WorkerResult } from './client-worker.js'
import type { Profile } from './profiles.js'

export interface LoadOptions {
  host: string
  port: number
  profile: Profile
  /** Client processes. */
  processes: number
  /** Connection loops per process. */
  concurrency: number
  /** Upper bound on connections (all processes). */
  count: number
  durationMs: number
  request: boolean
  /** Send a PROXY v2 header before each ClientHello. */
  proxyV2?: boolean
  /** Pin the client processes to these CPUs (`taskset -c` list). */
  cpus?: string
  /** Called once every client is primed, right before the measured window opens. */
  onStart?: () => void
  /** Live progress text (done, errors, rate). */
  onProgress?: (done: number, errors: number, elapsedMs: number) => void
}

export interface LoadResult {
  handshakes: number
  errors: number
  resumed: number
  offered: number
  elapsedMs: number
  handshakesPerSecond: number
  latencyMs: { p50: number; p95: number; p99: number }
  errorSamples: string[]
}

const WORKER = fileURLToPath(new URL('./client-worker.js', import.meta.url))

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index] as number
}

/** Pin a running process (all its threads) to `cpus`. */
export function pin (pid: number, cpus: string): void {
  spawnSync('taskset', ['-a', '-cp', cpus, String(pid)], { stdio: 'ignore' })
}

/**
 * Run one profile with `processes` client processes. Bounded twice: by `count` connections and
 * by `durationMs` (plus a hard stop 15 s later should a client hang).
 */
export async function runLoad (opts: LoadOptions): Promise<LoadResult> {
  const children: ChildProcess[] = []
  const progress = new Map<ChildProcess, { done: number; errors: number }>()
  const results: WorkerResult[] = []
  const perProcess = Math.ceil(opts.count / opts.processes)
  let started = 0
  const ready = new Set<ChildProcess>()
  let go: () => void = () => {}
  const allReady = new Promise<void>((resolve) => { go = resolve })
  const finished = Promise.all(Array.from({ length: opts.processes }, async () => {
    const config: WorkerConfig = { host: opts.host, port: opts.port, profile: opts.profile, concurrency: opts.concurrency, count: perProcess, durationMs: opts.durationMs, request: opts.request, proxyV2: opts.proxyV2 === true }
    const child = fork(WORKER, [], { env: { ...process.env, TLSFLEET_BENCH_WORKER: JSON.stringify(config) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.push(child)
    if (opts.cpus !== undefined && child.pid !== undefined) pin(child.pid, opts.cpus)
    await new Promise<void>((resolve) => {
      child.on('message', (m: { t: string; done?: number; errors?: number; result?: WorkerResult }) => {
        if (m.t === 'ready') { ready.add(child); if (ready.size === opts.processes) go() }
        if (m.t === 'progress') progress.set(child, { done: m.done ?? 0, errors: m.errors ?? 0 })
        if (m.t === 'result' && m.result !== undefined) results.push(m.result)
      })
      // 'close', not 'exit': it waits for the IPC channel to be read to its end, where a long run's large result may still be.
      child.once('close', () => { ready.add(child); if (ready.size === opts.processes) go(); resolve() })
    })
  }))
  const primeTimeout = setTimeout(() => go(), 30_000)
  await allReady
  clearTimeout(primeTimeout)
  opts.onStart?.()
  started = performance.now()
  for (const child of children) if (child.connected) child.send('go')
  const hardStop = setTimeout(() => { for (const c of children) c.kill('SIGKILL') }, opts.durationMs + 15_000)
  const ticker = setInterval(() => {
    let done = 0
    let errors = 0
    for (const p of progress.values()) { done += p.done; errors += p.errors }
    opts.onProgress?.(done, errors, performance.now() - started)
  }, 500)
  await finished
  clearTimeout(hardStop)
  clearInterval(ticker)

  const latencies = results.flatMap((r) => r.handshakeMs).sort((a, b) => a - b)
  const elapsedMs = Math.max(1, ...results.map((r) => r.elapsedMs))
  const handshakes = results.reduce((s, r) => s + r.ok, 0)
  return {
    handshakes,
    errors: results.reduce((s, r) => s + r.errors, 0),
    resumed: results.reduce((s, r) => s + r.resumed, 0),
    offered: results.reduce((s, r) => s + r.offered, 0),
    elapsedMs,
    handshakesPerSecond: handshakes / (elapsedMs / 1000),
    latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99) },
    errorSamples: [...(results.length < opts.processes ? [`${opts.processes - results.length} client process(es) died`] : []), ...results.flatMap((r) => r.errorSamples)].slice(0, 5)
  }
}
