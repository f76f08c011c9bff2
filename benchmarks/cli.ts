import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Command } from 'commander'
import { LabError, TlsfleetError, UsageError } from '../src/errors.js'
import { makeBenchCertificate, CERT_KINDS, type CertKind } from './certs.js'
import { runAgentSuite } from './agent.js'
import { runFailoverSuite } from './failover.js'
import { profileDir, runHandshakeSuite } from './handshake.js'
import { terminatorProfile, compareTable } from './cpu-profile.js'
import { memoryTable, runMemorySuite } from './memory.js'
import { defaultCpuSets, machineInfo } from './machine.js'
import { findProfiles, PROFILES } from './profiles.js'
import { Progress } from './progress.js'
import { failoverTable } from './failover.js'
import { agentTable } from './agent.js'
import { cpuSplitTable, handshakeTable, nodeRatioTable, ratioTable } from './report.js'
import type { BenchReport } from './bench-report.js'
import { benchReportDocument } from './html-report.js'
import { checkReportPath, writeHtmlReport } from '../src/report/html-report.js'
import { numberArgument } from '../src/cli/number-argument.js'
import { runSoakSuite, soakTable } from './soak.js'
import { runStoreSuite, storeTable } from './store.js'
import { runSyncSuite, syncTable } from './sync.js'
import { runSyncCostSuite, syncCostTable } from './sync-cost.js'
import { benchSettings } from './settings.js'
import { valgrindAvailable } from './callgrind.js'
import { COST_PROFILES, COST_PROFILES_SUPPORTED, COST_TARGETS, handshakeCostTable, runHandshakeCostSuite, type CostTarget } from './handshake-cost.js'
import { cpuCount, startBackend, targetAvailable, TARGET_KINDS, type TargetKind } from './targets.js'

export const SUITES = ['handshake', 'handshake-cost', 'failover', 'sync', 'sync-cost', 'store', 'agent', 'memory', 'soak'] as const
export type Suite = typeof SUITES[number]


function list (value: string): string[] { return value.split(',').map((s) => s.trim()).filter((s) => s !== '') }
function int (name: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = numberArgument(name, v, min, max)
    if (typeof n === 'string') throw new UsageError(n)
    return n
  }
}

interface BenchFlags {
  suites: string; targets?: string; profiles: string; certs: string; duration: number; count: number
  processes: number; concurrency: number; rounds: number; warmup: number; serverCpus: string; clientCpus: string; workers?: number
  request: boolean; json: boolean; out?: string; report?: string; quiet: boolean; cpuProf?: string
  sessions: number; syncCostUpdates: number; syncCostRefused: number; costCount: number; costWarmup: number; soakSeconds: number; soakRssMb: number
}

/**
 * `tlsfleet bench` and `npm run bench` (benchmarks/run.ts): the same command. Results go to
 * stdout as tables, or as JSON with --json; live progress goes to stderr.
 */
export function benchCommand (): Command {
  const cpus = defaultCpuSets()
  return new Command('bench')
    .description('TLS handshake benchmark: tlsfleet vs haproxy, hitch and a plain Node tls server (server CPU per handshake), failover, sync, store, agent, memory and soak suites')
    .option('--suites <LIST>', `suites to run (${SUITES.join(',')})`, 'handshake')
    .option('--targets <LIST>', `servers to compare (${TARGET_KINDS.join(',')}; default: every one installed)`)
    .option('--profiles <LIST>', `handshake profiles (${PROFILES.map((p) => p.name).join(',')})`, PROFILES.map((p) => p.name).join(','))
    .option('--certs <LIST>', `certificates (${CERT_KINDS.join(',')})`, CERT_KINDS.join(','))
    .option('--duration <S>', 'seconds per run (upper bound)', int('--duration', 1, 3600), 5)
    .option('--count <N>', 'connections per run (upper bound)', int('--count', 1, 10_000_000), 20_000)
    .option('--processes <N>', 'client processes', int('--processes', 1, 256), 2)
    .option('--concurrency <N>', 'connections in flight per client process', int('--concurrency', 1, 1024), 8)
    .option('--rounds <N>', 'handshake suite: measure every (profile, server) N times, the servers taking turns (steadier ratios on a noisy machine)', int('--rounds', 1, 100), 1)
    .option('--warmup <S>', 'handshake suite: seconds of unmeasured load per server and profile before the rounds (bounded by --count too), so that V8 has compiled and tiered up each server\'s JavaScript (tlsfleet has more of it than the plain server)', int('--warmup', 0, 600), 3)
    .option('--server-cpus <LIST>', 'CPUs the server under test is pinned to (taskset -c)', cpus.server)
    .option('--client-cpus <LIST>', 'CPUs the clients and the backend are pinned to', cpus.client)
    .option('--workers <N>', 'server workers/threads (default: number of server CPUs)', int('--workers', 1, 256))
    .option('--no-request', 'handshake only: send no HTTP request through the server to the backend')
    .option('--sessions <N>', 'memory suite: sessions held in L2', int('--sessions', 1000, 1_000_000), 100_000)
    .option('--cost-count <N>', 'handshake-cost suite: connections counted per server and profile (about 50 ms of valgrind time each; 1000 spans ~18 young-generation collections, so where they fall moves a count by under 1%)', int('--cost-count', 10, 100_000), 1000)
    .option('--cost-warmup <N>', 'handshake-cost suite: warm-up connections per server and profile before the counters are zeroed (V8 reaches its steady state after 1000-2000)', int('--cost-warmup', 0, 100_000), 2000)
    .option('--sync-cost-updates <N>', 'sync-cost suite: updates received under callgrind (about 3 ms of valgrind time each)', int('--sync-cost-updates', 100, 1_000_000), 20_000)
    .option('--sync-cost-refused <N>', 'sync-cost suite: datagrams of each refused kind (forged New, forged batch, our own echo) counted under callgrind', int('--sync-cost-refused', 100, 1_000_000), 5000)
    .option('--soak-seconds <S>', 'soak suite: length of the run (a worker kill -9 every minute, every third of the run when shorter than 3 minutes)', int('--soak-seconds', 10, 86_400), 600)
    .option('--soak-rss-mb <MB>', 'soak suite: the RSS every process of the node must stay under, MiB', int('--soak-rss-mb', 32, 65_536), 256)
    .option('--cpu-prof <DIR>', 'handshake suite: CPU-profile tlsfleet and the plain Node server (node --cpu-prof into DIR) and print where their time goes, per handshake')
    .option('--json', 'print the report as JSON on stdout', false)
    .option('--out <FILE>', 'also write the JSON report to FILE')
    .option('--report <FILE>', 'also write one self-contained HTML file: the tables as bar charts, the JSON report inline')
    .option('--quiet', 'no progress on stderr', false)
    .action(async (flags: BenchFlags) => {
      try {
        const html = flags.report !== undefined ? checkReportPath(flags.report) : undefined
        const report = await runBench(flags)
        if (flags.out !== undefined) fs.writeFileSync(flags.out, JSON.stringify(report, null, 2) + '\n')
        if (html !== undefined) writeHtmlReport(html, benchReportDocument(report, formatReport(report)), report)
        process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report) + '\n')
        // A soak whose checks failed fails the command (the report is printed first).
        if (report.soak?.checks.some((c) => !c.pass && c.warnOnly !== true) === true) process.exitCode = 1
      } catch (err) {
        if (err instanceof TlsfleetError) {
          process.stderr.write(`tlsfleet: ${err.message} (${err.code})\n`)
          process.exit(err.exitCode)
        }
        throw err
      }
    })
}

export async function runBench (flags: BenchFlags): Promise<BenchReport> {
  const suites = list(flags.suites)
  for (const s of suites) if (!SUITES.includes(s as Suite)) throw new UsageError(`--suites: unknown suite "${s}" (expected ${SUITES.join(', ')})`)
  const progress = new Progress(!flags.quiet)
  const skipped: string[] = []
  const requested = flags.targets !== undefined ? list(flags.targets) : [...TARGET_KINDS]
  for (const t of requested) if (!TARGET_KINDS.includes(t as TargetKind)) throw new UsageError(`--targets: unknown server "${t}" (expected ${TARGET_KINDS.join(', ')})`)
  const targets = (requested as TargetKind[]).filter((t) => {
    if (targetAvailable(t)) return true
    const why = `${t}: not installed (apt-get install ${t})`
    if (flags.targets !== undefined) throw new LabError(why)
    skipped.push(why)
    return false
  })
  const certKinds = list(flags.certs)
  for (const c of certKinds) if (!CERT_KINDS.includes(c as CertKind)) throw new UsageError(`--certs: unknown certificate "${c}" (expected ${CERT_KINDS.join(', ')})`)
  const profiles = (() => { try { return findProfiles(list(flags.profiles)) } catch (err) { throw new UsageError(`--profiles: ${(err as Error).message}`) } })()
  const workers = flags.workers ?? cpuCount(flags.serverCpus)
  // The handshake-cost suite: the plain Node server and tlsfleet (with or without PROXY v2 in) only, and the profiles its client can make.
  const costTargets = flags.targets !== undefined ? (list(flags.targets).filter((t) => COST_TARGETS.includes(t as CostTarget)) as CostTarget[]) : ['node', 'tlsfleet'] as CostTarget[]
  const costProfiles = flags.profiles === PROFILES.map((p) => p.name).join(',') ? [...COST_PROFILES] : profiles.map((p) => p.name)
  const unsupported = costProfiles.filter((p) => !COST_PROFILES_SUPPORTED.includes(p))
  if (suites.includes('handshake-cost') && unsupported.length > 0) throw new UsageError(`--profiles: the handshake-cost suite counts ${COST_PROFILES_SUPPORTED.join(', ')}, not ${unsupported.join(', ')}`)
  const report: BenchReport = {
    machine: machineInfo(flags.serverCpus, flags.clientCpus),
    command: `tlsfleet bench ${process.argv.slice(process.argv.findIndex((a) => a === 'bench') + 1).join(' ')}`.trim(),
    settings: benchSettings({
      suites, certs: certKinds, targets, profiles: profiles.map((p) => p.name), durationSeconds: flags.duration, count: flags.count, processes: flags.processes,
      concurrency: flags.concurrency, rounds: flags.rounds, warmupSeconds: flags.warmup, workers, request: flags.request, costTargets, costProfiles, costCount: flags.costCount,
      costWarmup: flags.costWarmup, syncCostUpdates: flags.syncCostUpdates, syncCostRefused: flags.syncCostRefused, sessions: flags.sessions, soakSeconds: flags.soakSeconds, soakRssMb: flags.soakRssMb
    }),
    skipped
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-bench-'))
  // Ctrl-C mid-run: the suites' processes go with their watchdogs; the temporary directory,
  // which holds the bench's private keys, goes here, and the progress line is ended.
  const interrupted = (signal: NodeJS.Signals): void => {
    fs.rmSync(dir, { recursive: true, force: true })
    process.stderr.write(`\ntlsfleet bench: stopped by ${signal}; its temporary files are removed\n`)
    process.exit(signal === 'SIGINT' ? 130 : 143)
  }
  process.once('SIGINT', interrupted)
  process.once('SIGTERM', interrupted)
  const backend = await startBackend(flags.clientCpus)
  try {
    const certs = certKinds.map((kind) => ({ kind: kind as CertKind, pem: makeBenchCertificate(dir, kind as CertKind) }))
    if (suites.includes('handshake')) {
      progress.line(`handshake suite: ${targets.join(', ')} × ${profiles.map((p) => p.name).join(', ')} × ${certKinds.join(', ')}; server on CPUs ${flags.serverCpus}, clients on ${flags.clientCpus}`)
      const served = new Map<string, number>()
      const cpuProfileDir = flags.cpuProf !== undefined ? path.resolve(flags.cpuProf) : undefined
      report.handshake = await runHandshakeSuite({
        certs, targets, profiles, backendPort: backend.port, serverCpus: flags.serverCpus, clientCpus: flags.clientCpus, workers,
        processes: flags.processes, concurrency: flags.concurrency, count: flags.count, durationMs: flags.duration * 1000, warmupMs: flags.warmup * 1000, rounds: flags.rounds, request: flags.request, dir, progress,
        served, ...(cpuProfileDir !== undefined ? { cpuProfileDir } : {})
      })
      if (cpuProfileDir !== undefined) report.cpuProfiles = compareProfiles(cpuProfileDir, certKinds, served)
    }
    const rsa = (certs.find((c) => c.kind === 'rsa') ?? certs[0])?.pem
    if (suites.includes('handshake-cost')) {
      if (!valgrindAvailable()) throw new LabError('--suites handshake-cost: valgrind is not installed (apt-get install valgrind)')
      const cert = certs[0] as { kind: CertKind; pem: string }
      progress.line(`handshake-cost suite: instructions per handshake under callgrind, ${costTargets.join(' and ')} × ${costProfiles.join(', ')}, ${cert.kind} certificate, ${flags.costCount} connections each`)
      report.handshakeCost = await runHandshakeCostSuite({ progress, pem: cert.pem, certKind: cert.kind, backendPort: backend.port, dir, count: flags.costCount, warmup: flags.costWarmup, targets: costTargets, profiles: costProfiles })
    }
    if (suites.includes('failover')) {
      progress.line('failover suite: 3-node lab farms (tlsfleet, HAProxy and mixed terminators), node1 killed; shared sessions vs sharing off')
      report.failover = await runFailoverSuite({ progress, ...(rsa !== undefined ? { cert: rsa } : {}), clients: Math.min(flags.count, 300) })
    }
    if (suites.includes('sync')) {
      progress.line('sync suite: propagation delay and sustained update rate')
      report.sync = await runSyncSuite({ progress, samples: Math.min(flags.count, 200), serverCpus: flags.serverCpus, clientCpus: flags.clientCpus, ...(rsa !== undefined ? { cert: rsa } : {}) })
    }
    if (suites.includes('sync-cost')) {
      if (!valgrindAvailable()) throw new LabError('--suites sync-cost: valgrind is not installed (apt-get install valgrind)')
      progress.line('sync-cost suite: instructions per sync update received (callgrind), against the AEAD open alone, per cipher')
      report.syncCost = await runSyncCostSuite({ progress, updates: flags.syncCostUpdates, refused: flags.syncCostRefused })
    }
    if (suites.includes('store')) {
      progress.line('store suite: cross-node resumption through a redis-server, lookup latency, write rate')
      report.store = await runStoreSuite({ progress, samples: Math.min(flags.count, 200), ...(rsa !== undefined ? { cert: rsa } : {}) })
    }
    if (suites.includes('agent')) {
      progress.line('agent suite: /health and agent-check latency while the workers do full handshakes')
      report.agent = await runAgentSuite({ progress, pem: rsa as string, serverCpus: flags.serverCpus, clientCpus: flags.clientCpus, workers, processes: flags.processes, concurrency: flags.concurrency, durationMs: flags.duration * 1000, dir })
    }
    if (suites.includes('memory')) {
      progress.line('memory suite: RSS per session held in L2')
      report.memory = await runMemorySuite({ progress, sessions: flags.sessions })
    }
    if (suites.includes('soak')) {
      progress.line(`soak suite: ${flags.soakSeconds} s of mixed handshakes, worker kills, a sync flood; RSS, counters and the agent watched`)
      report.soak = await runSoakSuite({
        progress, seconds: flags.soakSeconds, rssBoundMb: flags.soakRssMb, pem: rsa as string, backendPort: backend.port, serverCpus: flags.serverCpus, clientCpus: flags.clientCpus,
        workers, processes: flags.processes, concurrency: flags.concurrency, dir
      })
    }
  } finally {
    await backend.stop()
    fs.rmSync(dir, { recursive: true, force: true })
    process.removeListener('SIGINT', interrupted)
    process.removeListener('SIGTERM', interrupted)
  }
  return report
}

/** tlsfleet's (and tlsfleet-pp2's) worker against the plain server, for each certificate profiled. */
function compareProfiles (root: string, certs: string[], served: Map<string, number>): Array<{ cert: string; target: string; table: string }> {
  const out: Array<{ cert: string; target: string; table: string }> = []
  for (const cert of certs) {
    const nodeDir = profileDir(root, cert, 'node')
    const node = fs.existsSync(nodeDir) ? terminatorProfile(nodeDir) : undefined
    if (node === undefined) continue
    for (const target of ['tlsfleet', 'tlsfleet-pp2']) {
      const dir = profileDir(root, cert, target)
      const ours = fs.existsSync(dir) ? terminatorProfile(dir) : undefined
      if (ours === undefined) continue
      out.push({
        cert,
        target,
        table: compareTable({ label: target, summary: ours, handshakes: served.get(`${cert}|${target}`) ?? 0 }, { label: 'node', summary: node, handshakes: served.get(`${cert}|node`) ?? 0 })
      })
    }
  }
  return out
}

export function formatReport (r: BenchReport): string {
  const out: string[] = []
  const m = r.machine
  out.push(`machine: ${m.cpu}, ${m.cores} cores, ${m.kernel}; node ${m.node}; ${m.openssl}${m.haproxy !== undefined ? `; ${m.haproxy}` : ''}${m.hitch !== undefined ? `; ${m.hitch}` : ''}`)
  out.push(`server CPUs ${m.serverCpus}, client CPUs ${m.clientCpus}; ${JSON.stringify(r.settings)}`)
  for (const s of r.skipped) out.push(`skipped: ${s}`)
  if (r.handshake !== undefined && r.handshake.length > 0) {
    out.push('', 'Handshakes (server CPU from /proc utime+stime of the server process tree):', '', handshakeTable(r.handshake))
    out.push('', 'Where the server CPU goes, µs per handshake (/proc/PID/task: the root process, e.g. tlsfleet\'s primary or the plain server, and its children, e.g. tlsfleet\'s workers; main threads and the rest: V8\'s helpers, libuv\'s pool, HAProxy\'s threads):', '', cpuSplitTable(r.handshake))
    out.push('', 'Server CPU per handshake, relative to tlsfleet:', '', ratioTable(r.handshake))
    if (r.handshake.some((row) => row.target === 'node')) {
      out.push('', 'tlsfleet against the plain Node terminator (server CPU per handshake; a TLS 1.2 session ID against node\'s TLS 1.2 ticket):', '', nodeRatioTable(r.handshake))
    }
  }
  for (const p of r.cpuProfiles ?? []) out.push('', `Where the CPU goes, ${p.cert}: ${p.target}'s worker against the plain Node server (--cpu-prof self time per handshake served, warm-ups included; all profiles of the run together):`, '', p.table)
  if (r.failover !== undefined) out.push('', 'Failover (returning clients of a killed node):', '', failoverTable(r.failover))
  if (r.handshakeCost !== undefined) out.push('', `Server work per handshake, counted (instructions, not time: steady on a noisy machine; ${r.handshakeCost.cert} certificate, a request through to the backend each):`, '', handshakeCostTable(r.handshakeCost))
  if (r.sync !== undefined) out.push('', 'Farm sync:', '', syncTable(r.sync))
  if (r.syncCost !== undefined) out.push('', 'Farm sync, CPU work per update received (instructions, not time: steady on a noisy machine):', '', syncCostTable(r.syncCost))
  if (r.store !== undefined) out.push('', 'Session store (Redis, no UDP sync):', '', storeTable(r.store))
  if (r.agent !== undefined) out.push('', 'Admin API and agent under load:', '', agentTable(r.agent))
  if (r.soak !== undefined) out.push('', 'Soak:', '', soakTable(r.soak))
  if (r.memory !== undefined) out.push('', 'L2 memory (RSS growth of a process holding the sessions: settled = after full collections; running = fed over IPC as a primary is, growth per session as the cache fills; counted = what --cache-max-bytes counts):', '', memoryTable(r.memory))
  return out.join('\n')
}
