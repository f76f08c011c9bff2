import fs from 'node:fs'
import path from 'node:path'
import { CpuMeter, CpuSplitMeter, type CpuSplit } from '../src/lab/proc-cpu.js'
import type { CertKind } from './certs.js'
import { runLoad, type LoadOptions, type LoadResult } from './load.js'
import type { Profile } from './profiles.js'
import type { Progress } from './progress.js'
import { startTarget, type Target, type TargetKind } from './targets.js'

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
  /** Server CPU (primary + workers / all threads / all children) per handshake, µs; all rounds together. */
  serverCpuUsPerHandshake: number
  /** The same as seconds per 1,000 handshakes. */
  serverCpuSecondsPer1000: number
  /** Server CPU per handshake of each round, µs (ratios are taken round by round too). */
  roundsUsPerHandshake: number[]
  /**
   * Where the server CPU went, µs per handshake, all rounds: the root process (tlsfleet's
   * primary, the plain server's only process, HAProxy's) and its descendants (tlsfleet's
   * workers, hitch's child), each as main thread and other threads (V8's helpers, libuv's pool,
   * HAProxy's threads). A breakdown from /proc/PID/task: threads that ended within a round are
   * not in it. Absent in reports written before it existed.
   */
  serverCpuSplitUsPerHandshake?: CpuSplit
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
  /** Every (profile, target) is measured this many times, the targets taking turns. */
  rounds: number
  /** Unmeasured load per (target, profile) before the rounds, bounded by `count` too; 0 = none. */
  warmupMs: number
  request: boolean
  dir: string
  progress: Progress
  /** Profile tlsfleet's and the plain Node server's processes into DIR/CERT-TARGET (node --cpu-prof). */
  cpuProfileDir?: string
  /** Filled with the handshakes each (cert|target) served, warm-ups included (to divide its profile by). */
  served?: Map<string, number>
}

/** Where --cpu-prof puts one server's profiles. */
export function profileDir (root: string, cert: string, target: string): string {
  return path.join(root, `${cert}-${target}`)
}

const PROFILED: ReadonlySet<TargetKind> = new Set(['tlsfleet', 'tlsfleet-pp2', 'node'])

interface Measurement { handshakes: number; errors: number; elapsedMs: number; offered: number; resumed: number; cpu: number; split: CpuSplit; latencies: LoadResult['latencyMs']; errorSamples: string[] }

/**
 * Every (certificate, target, profile). The targets of one certificate run side by side: all
 * started at once (idle ones cost nothing measurable), then each profile is measured on each
 * target in turn, `rounds` times, the order reversed every other round, so that a machine
 * whose speed drifts (a shared VM) shifts every target alike and ratios stay comparable.
 */
export async function runHandshakeSuite (opts: HandshakeSuiteOptions): Promise<HandshakeRow[]> {
  const rows: HandshakeRow[] = []
  for (const cert of opts.certs) {
    const targets: Target[] = []
    try {
      for (const kind of opts.targets) {
        let env: NodeJS.ProcessEnv | undefined
        if (opts.cpuProfileDir !== undefined && PROFILED.has(kind)) {
          const dir = profileDir(opts.cpuProfileDir, cert.kind, kind)
          fs.mkdirSync(dir, { recursive: true })
          env = { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${dir}`.trim() }
        }
        targets.push(await startTarget(kind, { pem: cert.pem, backendPort: opts.backendPort, cpus: opts.serverCpus, workers: opts.workers, dir: opts.dir, ...(env !== undefined ? { env } : {}) }))
      }
      const served = (target: Target, handshakes: number): void => {
        const key = `${cert.kind}|${target.kind}`
        opts.served?.set(key, (opts.served.get(key) ?? 0) + handshakes)
      }
      // Warm-up, not measured: V8 compiling and tiering up each server's JavaScript (with 1 s
      // of it, tlsfleet / node came out 0.06-0.10 higher than with 3 s; 12 s bought nothing
      // more: docs/benchmarks.md), worker caches, the backend's accept path. Every profile,
      // each server in turn.
      for (const target of opts.warmupMs > 0 ? targets : []) {
        for (const profile of opts.profiles) {
          opts.progress.update(`${cert.kind} ${target.kind} ${profile.name}: warming up (${opts.warmupMs / 1000} s)`)
          const warm = await runLoad({ ...loadOptions(opts, target, profile), durationMs: opts.warmupMs })
          served(target, warm.handshakes)
        }
      }
      const results = new Map<string, Measurement[]>()
      for (let turn = 0; turn < opts.rounds; turn++) {
        for (const profile of opts.profiles) {
          for (const target of turn % 2 === 0 ? targets : [...targets].reverse()) {
            const name = `${cert.kind} ${target.kind} ${profile.name}${opts.rounds > 1 ? ` (round ${turn + 1}/${opts.rounds})` : ''}`
            const m = await measure(opts, target, profile, name)
            served(target, m.handshakes)
            const key = `${target.kind}|${profile.name}`
            results.set(key, [...(results.get(key) ?? []), m])
            opts.progress.line(`${name}: ${m.handshakes} handshakes, server ${m.handshakes > 0 ? round((m.cpu / m.handshakes) * 1e6, 0) : 0} µs/handshake, ${m.errors} errors`)
          }
        }
      }
      for (const target of targets) {
        for (const profile of opts.profiles) rows.push(toRow(cert.kind, target, profile, results.get(`${target.kind}|${profile.name}`) ?? []))
      }
    } finally {
      for (const target of targets) await target.stop()
    }
  }
  return rows
}

function loadOptions (opts: HandshakeSuiteOptions, target: Target, profile: Profile): LoadOptions {
  return {
    host: '127.0.0.1',
    port: target.port,
    profile,
    processes: opts.processes,
    concurrency: opts.concurrency,
    count: opts.count,
    durationMs: opts.durationMs,
    request: opts.request,
    proxyV2: target.proxyV2In,
    cpus: opts.clientCpus
  }
}

async function measure (opts: HandshakeSuiteOptions, target: Target, profile: Profile, name: string): Promise<Measurement> {
  let meter: CpuMeter | undefined
  let splitMeter: CpuSplitMeter | undefined
  const load = await runLoad({
    ...loadOptions(opts, target, profile),
    onStart: () => { meter = new CpuMeter(() => [target.pid]); splitMeter = new CpuSplitMeter(() => [target.pid]) },
    onProgress: (done, errors, ms) => opts.progress.update(`${name}: ${done} handshakes, ${errors} errors, ${(done / Math.max(ms / 1000, 0.001)).toFixed(0)}/s`)
  })
  return { handshakes: load.handshakes, errors: load.errors, elapsedMs: load.elapsedMs, offered: load.offered, resumed: load.resumed, cpu: meter?.read() ?? 0, split: splitMeter?.read() ?? { rootMain: 0, rootOther: 0, childrenMain: 0, childrenOther: 0 }, latencies: load.latencyMs, errorSamples: load.errorSamples }
}

/** One row from the rounds of a (target, profile): sums, and the latencies of the median round. */
function toRow (cert: CertKind, target: Target, profile: Profile, rounds: Measurement[]): HandshakeRow {
  const sum = (f: (m: Measurement) => number): number => rounds.reduce((s, m) => s + f(m), 0)
  const handshakes = sum((m) => m.handshakes)
  const cpu = sum((m) => m.cpu)
  const seconds = sum((m) => m.elapsedMs) / 1000
  const offered = sum((m) => m.offered)
  const byRate = [...rounds].sort((a, b) => a.handshakes / a.elapsedMs - b.handshakes / b.elapsedMs)
  const median = byRate[Math.floor(byRate.length / 2)]
  return {
    cert,
    target: target.kind,
    label: target.label,
    profile: profile.name,
    handshakes,
    errors: sum((m) => m.errors),
    seconds: round(seconds, 2),
    handshakesPerSecond: round(handshakes / Math.max(seconds, 0.001), 0),
    latencyMs: { p50: round(median?.latencies.p50 ?? 0, 2), p95: round(median?.latencies.p95 ?? 0, 2), p99: round(median?.latencies.p99 ?? 0, 2) },
    resumedShare: offered > 0 ? round(sum((m) => m.resumed) / offered, 4) : null,
    serverCpuSeconds: round(cpu, 3),
    serverCpuUsPerHandshake: perHandshakeUs(cpu, handshakes),
    serverCpuSecondsPer1000: handshakes > 0 ? round((cpu / handshakes) * 1000, 3) : 0,
    roundsUsPerHandshake: rounds.map((m) => perHandshakeUs(m.cpu, m.handshakes)),
    serverCpuSplitUsPerHandshake: {
      rootMain: perHandshakeUs(sum((m) => m.split.rootMain), handshakes),
      rootOther: perHandshakeUs(sum((m) => m.split.rootOther), handshakes),
      childrenMain: perHandshakeUs(sum((m) => m.split.childrenMain), handshakes),
      childrenOther: perHandshakeUs(sum((m) => m.split.childrenOther), handshakes)
    },
    errorSamples: [...new Set(rounds.flatMap((m) => m.errorSamples))].slice(0, 5)
  }
}

/** CPU seconds over handshakes, as whole µs per handshake (0 when none). */
function perHandshakeUs (seconds: number, handshakes: number): number {
  return handshakes > 0 ? round((seconds / handshakes) * 1e6, 0) : 0
}

export function round (x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}
