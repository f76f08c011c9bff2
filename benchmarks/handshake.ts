import { CpuMeter } from '../src/lab/proc-cpu.js'
import type { CertKind } from './certs.js'
import { runLoad } from './load.js'
import type { Profile } from './profiles.js'
import type { Progress } from './progress.js'
import { startTarget, type TargetKind } from './targets.js'

export interface HandshakeRow {
  cert: CertKind
  target: TargetKind
  label: string
  profile: string
  handshakes: number
  errors: number
  seconds: number
  handshakesPerSecond: number
  latencyMs: { p50: number; p95: number; p99: number }
  /** Of the connections that offered a session, the share the server resumed. */
  resumedShare: number | null
  serverCpuSeconds: number
  /** Server CPU (primary + workers / all threads / all children) per handshake, µs. */
  serverCpuUsPerHandshake: number
  /** The same as seconds per 1,000 handshakes. */
  serverCpuSecondsPer1000: number
  errorSamples: string[]
}

export interface HandshakeSuiteOptions {
  certs: Array<{ kind: CertKind; pem: string }>
  targets: TargetKind[]
  profiles: Profile[]
  backendPort: number
  serverCpus: string
  clientCpus: string
  workers: number
  processes: number
  concurrency: number
  count: number
  durationMs: number
  request: boolean
  dir: string
  progress: Progress
}

/** Every (certificate, target, profile), one server start per (certificate, target). */
export async function runHandshakeSuite (opts: HandshakeSuiteOptions): Promise<HandshakeRow[]> {
  const rows: HandshakeRow[] = []
  for (const cert of opts.certs) {
    for (const kind of opts.targets) {
      const target = await startTarget(kind, { pem: cert.pem, backendPort: opts.backendPort, cpus: opts.serverCpus, workers: opts.workers, dir: opts.dir })
      try {
        // Warm-up, not measured: JIT, worker caches, the backend's accept path.
        await runLoad({ host: '127.0.0.1', port: target.port, profile: opts.profiles[0] as Profile, processes: opts.processes, concurrency: opts.concurrency, count: Math.min(200, opts.count), durationMs: Math.min(1000, opts.durationMs), request: opts.request, cpus: opts.clientCpus })
        for (const profile of opts.profiles) {
          const name = `${cert.kind} ${target.kind} ${profile.name}`
          let meter: CpuMeter | undefined
          const load = await runLoad({
            host: '127.0.0.1',
            port: target.port,
            profile,
            processes: opts.processes,
            concurrency: opts.concurrency,
            count: opts.count,
            durationMs: opts.durationMs,
            request: opts.request,
            cpus: opts.clientCpus,
            onStart: () => { meter = new CpuMeter(() => [target.pid]) },
            onProgress: (done, errors, ms) => opts.progress.update(`${name}: ${done} handshakes, ${errors} errors, ${(done / Math.max(ms / 1000, 0.001)).toFixed(0)}/s`)
          })
          const cpu = meter?.read() ?? 0
          const row: HandshakeRow = {
            cert: cert.kind,
            target: target.kind,
            label: target.label,
            profile: profile.name,
            handshakes: load.handshakes,
            errors: load.errors,
            seconds: round(load.elapsedMs / 1000, 2),
            handshakesPerSecond: round(load.handshakesPerSecond, 0),
            latencyMs: { p50: round(load.latencyMs.p50, 2), p95: round(load.latencyMs.p95, 2), p99: round(load.latencyMs.p99, 2) },
            resumedShare: load.offered > 0 ? round(load.resumed / load.offered, 4) : null,
            serverCpuSeconds: round(cpu, 3),
            serverCpuUsPerHandshake: load.handshakes > 0 ? round((cpu / load.handshakes) * 1e6, 0) : 0,
            serverCpuSecondsPer1000: load.handshakes > 0 ? round((cpu / load.handshakes) * 1000, 3) : 0,
            errorSamples: load.errorSamples
          }
          rows.push(row)
          opts.progress.line(`${name}: ${row.handshakes} handshakes in ${row.seconds} s, ${row.handshakesPerSecond}/s, server ${row.serverCpuUsPerHandshake} µs/handshake, p50 ${row.latencyMs.p50} ms, resumed ${row.resumedShare === null ? '-' : `${(row.resumedShare * 100).toFixed(1)}%`}, ${row.errors} errors`)
        }
      } finally {
        await target.stop()
      }
    }
  }
  return rows
}

export function round (x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}
