import crypto from 'node:crypto'
import dgram from 'node:dgram'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { processTree } from '../src/lab/proc-cpu.js'
import { counterSeries, countersBackwards, sumMetric } from '../src/metrics/prometheus-text.js'
import { writeFarmSecretFile } from '../src/sync/farm-secret.js'
import { freeTcpPort, freeTcpUdpPort } from '../src/util/free-port.js'
import { round, type HandshakeSuiteOptions } from './handshake.js'
import { runLoad } from './load.js'
import { PROFILES, type Profile } from './profiles.js'
import { table } from './report.js'
import { startTarget } from './targets.js'

export interface SoakOptions extends Pick<HandshakeSuiteOptions, 'progress' | 'backendPort' | 'serverCpus' | 'clientCpus' | 'workers' | 'processes' | 'concurrency' | 'dir'> {
  /** Length of the run (the load's window), seconds. */
  seconds: number
  /** Bound every process's RSS must stay under, MiB. */
  rssBoundMb: number
  pem: string
}

export interface SoakProcessRow {
  role: 'primary' | 'worker'
  pid: number
  samples: number
  firstMb: number
  maxMb: number
  lastMb: number
  /** Killed by the soak (kill -9). */
  killed: boolean
}

/** `warnOnly`: reported, but does not fail the run. */
export interface SoakCheck { check: string; pass: boolean; detail: string; warnOnly?: boolean }

export interface SoakReport {
  seconds: number
  rssBoundMb: number
  workers: number
  handshakes: number
  resumed: number
  /** Connections that failed: those cut by a worker kill among them. */
  errors: number
  workerKills: number
  killEverySeconds: number
  /** Junk sent; rejected by the node (counted by reason); dropped by the kernel (counted from /proc/net/udp). */
  syncFlood: { datagrams: number; rejectedCounted: number; droppedKernel: number }
  scrapes: number
  agentProbes: number
  agentFailures: number
  agentMaxMs: number
  processes: SoakProcessRow[]
  checks: SoakCheck[]
  /** When a check failed: whether the primary was still alive at the end, and the node's last output lines. */
  failure?: { primaryAlive: boolean; nodeOutput: string[] }
}

/** Longest time a killed worker may take to be replaced (the primary backs off after repeated deaths). */
const REPLACE_WITHIN_MS = 15_000
/** Junk datagrams sent at the sync port in the burst, and the most time it may take. */
const FLOOD_DATAGRAMS = 20_000
const FLOOD_MAX_MS = 3000
const RSS_EVERY_MS = 1000
/** A step back this small, relative to the value, is float rounding. */
const ROUNDING = 1e-12
/** Below this a process is still being forked (exec not done): its reading is skipped. */
const FORKING_MB = 8
const SCRAPE_EVERY_MS = 2000
const AGENT_EVERY_MS = 1000

/** Kills every minute; a run shorter than 3 minutes gets three (one every third of it). */
export function killInterval (seconds: number): number {
  return seconds >= 180 ? 60 : Math.max(3, Math.floor(seconds / 3))
}

function rssMb (pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? undefined : Number(m[1]) / 1024
  } catch { return undefined } // exited meanwhile
}

/** When the process started (clock ticks since boot, /proc/PID/stat field 22). */
function startTicks (pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
  } catch { return undefined }
}

/** One agent-check as HAProxy makes it: connect, send a line, read until the agent closes; ms, or null. */
async function agentCheck (port: number): Promise<number | null> {
  const start = performance.now()
  return await new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    let text = ''
    const finish = (ok: boolean): void => { clearTimeout(timer); socket.destroy(); resolve(ok ? performance.now() - start : null) }
    const timer = setTimeout(() => finish(false), 2000)
    socket.on('connect', () => socket.write('hello\n'))
    socket.on('data', (d: Buffer) => { text += d.toString('latin1') })
    socket.on('error', () => finish(/^(ready|drain|maint) (up|down)\b/.test(text)))
    socket.on('close', () => finish(/^(ready|drain|maint) (up|down)\b/.test(text)))
  })
}

/** Random bytes at the sync port as fast as the socket takes them, bounded in count and time. */
async function syncFlood (port: number): Promise<number> {
  const socket = dgram.createSocket('udp4')
  const junk = crypto.randomBytes(1400)
  const deadline = performance.now() + FLOOD_MAX_MS
  let sent = 0
  try {
    while (sent < FLOOD_DATAGRAMS && performance.now() < deadline) {
      const batch: Array<Promise<void>> = []
      for (let i = 0; i < 200 && sent < FLOOD_DATAGRAMS; i++, sent++) {
        const length = 64 + (sent * 37) % 1300
        batch.push(new Promise((resolve) => socket.send(junk, 0, length, port, '127.0.0.1', () => resolve())))
      }
      await Promise.all(batch)
    }
  } finally {
    socket.close()
  }
  return sent
}

/**
 * A long run against a real node: mixed handshakes (new and returning clients, TLS 1.2 session
 * IDs and TLS 1.3 tickets) for `seconds`, the youngest worker killed with SIGKILL every minute and a burst
 * of junk datagrams at the sync port halfway. Meanwhile it samples the RSS of every process of
 * the node, scrapes /metrics (no counter may go backwards between two scrapes), and asks the
 * agent-check port (it must answer every time). Bounded: the load stops at `seconds` (a hard
 * stop 15 s later), every probe has a 2 s timeout.
 */
export async function runSoakSuite (opts: SoakOptions): Promise<SoakReport> {
  const taken = new Set<number>()
  const adminPort = await freeTcpPort('127.0.0.1', taken)
  const agentPort = await freeTcpPort('127.0.0.1', taken)
  const syncPort = await freeTcpUdpPort('127.0.0.1', taken)
  const secret = writeFarmSecretFile(path.join(opts.dir, 'soak-farm.key'))
  // Two workers at least: a kill must leave one serving.
  const workers = Math.max(2, opts.workers)
  const target = await startTarget('tlsfleet', {
    pem: opts.pem, backendPort: opts.backendPort, cpus: opts.serverCpus, workers, dir: opts.dir, adminPort,
    tlsfleetArgs: ['--agent-listen', `127.0.0.1:${agentPort}`, '--sync-listen', `127.0.0.1:${syncPort}`, '--sync-secret-file', secret]
  })
  const primary = target.pid
  const metricsUrl = `http://127.0.0.1:${adminPort}/metrics`
  const rss = new Map<number, SoakProcessRow>()
  const killed = new Set<number>()
  const kills: Array<{ at: number; pid: number; handshakesBefore: number; replacedAfterMs?: number }> = []
  const agent = { probes: 0, failures: 0, maxMs: 0 }
  const scrape = { count: 0, failures: 0, backwards: [] as string[], rounding: [] as string[], last: undefined as Map<string, number> | undefined, text: '' }
  const flood = { datagrams: 0, rejectedBefore: 0, rejectedAfter: 0, droppedBefore: 0, droppedAfter: 0, done: false }
  const killEvery = killInterval(opts.seconds)
  let done = 0
  let errors = 0
  let started = 0
  const timers: NodeJS.Timeout[] = []
  const pending = new Set<Promise<unknown>>()
  const track = (p: Promise<unknown>): void => { pending.add(p); void p.finally(() => pending.delete(p)) }
  const workerPids = (): number[] => processTree(primary).filter((pid) => pid !== primary)
  const syncIn = (text: string, result?: string): number => sumMetric(text, 'tlsfleet_sync_packets_total', { direction: 'in', ...(result !== undefined ? { result } : {}) })
  const dropped = (text: string): number => syncIn(text, 'dropped_kernel')
  const rejected = (text: string): number => syncIn(text) - syncIn(text, 'accepted') - dropped(text)

  const sampleRss = (): void => {
    for (const pid of processTree(primary)) {
      const mb = rssMb(pid)
      // Not yet a node process (a worker being forked): nothing to bound.
      if (mb === undefined || mb < FORKING_MB) continue
      const row = rss.get(pid) ?? { role: pid === primary ? 'primary' : 'worker', pid, samples: 0, firstMb: mb, maxMb: 0, lastMb: mb, killed: false }
      row.samples++
      row.maxMb = Math.max(row.maxMb, mb)
      row.lastMb = mb
      rss.set(pid, row)
    }
  }
  // One scrape at a time: two in flight could finish out of order and compare a page with an older one.
  let scraping: Promise<void> | undefined
  const scrapeOnce = async (): Promise<void> => {
    scraping ??= scrapeNow().finally(() => { scraping = undefined })
    await scraping
  }
  const scrapeNow = async (): Promise<void> => {
    try {
      const response = await fetch(metricsUrl, { signal: AbortSignal.timeout(2000) })
      const text = await response.text()
      const now = counterSeries(text)
      for (const b of scrape.last !== undefined ? countersBackwards(scrape.last, now) : []) {
        const text = `${b.series}: ${b.before} -> ${b.after} (at ${Math.round((performance.now() - started) / 1000)} s)`
        // A float sum (CPU seconds, a histogram's _sum) added up in another order differs in its last bits.
        if (b.before - b.after <= Math.abs(b.before) * ROUNDING) scrape.rounding.push(text)
        else scrape.backwards.push(text)
      }
      scrape.last = now
      scrape.text = text
      scrape.count++
      // Replaced workers: all listening again, the victim gone (a second after the kill, past the page's worker figures, up to 1 s old).
      const listening = sumMetric(text, 'tlsfleet_workers', { state: 'listening' })
      for (const k of kills) {
        if (k.replacedAfterMs === undefined && performance.now() - k.at > 1100 && listening === workers && !workerPids().includes(k.pid)) k.replacedAfterMs = performance.now() - k.at
      }
    } catch {
      scrape.failures++
    }
  }
  const probeAgent = async (): Promise<void> => {
    const ms = await agentCheck(agentPort)
    agent.probes++
    if (ms === null) agent.failures++
    else agent.maxMs = Math.max(agent.maxMs, ms)
  }
  const killWorker = (): void => {
    // The youngest: the oldest worker lives through the whole run, so its RSS shows any growth.
    const victim = workerPids().sort((a, b) => (startTicks(b) ?? 0) - (startTicks(a) ?? 0) || b - a)[0]
    if (victim === undefined) return
    try { process.kill(victim, 'SIGKILL') } catch { return }
    killed.add(victim)
    kills.push({ at: performance.now(), pid: victim, handshakesBefore: done })
    opts.progress.line(`soak ${Math.round((performance.now() - started) / 1000)} s: kill -9 of worker ${victim} (${kills.length})`)
  }
  const startFlood = async (): Promise<void> => {
    await scrapeOnce()
    flood.rejectedBefore = rejected(scrape.text)
    flood.droppedBefore = dropped(scrape.text)
    flood.datagrams = await syncFlood(syncPort)
    opts.progress.line(`soak ${Math.round((performance.now() - started) / 1000)} s: ${flood.datagrams} junk datagrams sent at the sync port`)
    flood.done = true
  }
  const line = (): string => {
    const mine = [...rss.values()]
    const primaryRow = mine.find((r) => r.role === 'primary')
    const workerMax = Math.max(0, ...mine.filter((r) => r.role === 'worker').map((r) => r.lastMb))
    return `soak ${Math.round((performance.now() - started) / 1000)}/${opts.seconds} s: ${done} handshakes, ${errors} errors, ${kills.length} kills; RSS primary ${round(primaryRow?.lastMb ?? 0, 0)} MB, workers up to ${round(workerMax, 0)} MB; ${scrape.count} scrapes, ${scrape.backwards.length} counters backwards; agent ${agent.probes - agent.failures}/${agent.probes}`
  }

  const mixed = PROFILES.find((p) => p.name === 'mixed') as Profile
  try {
    sampleRss()
    const load = await runLoad({
      host: '127.0.0.1', port: target.port, profile: mixed, processes: opts.processes, concurrency: opts.concurrency,
      count: 1_000_000_000, durationMs: opts.seconds * 1000, request: true, cpus: opts.clientCpus,
      onStart: () => {
        started = performance.now()
        timers.push(setInterval(sampleRss, RSS_EVERY_MS))
        timers.push(setInterval(() => track(scrapeOnce()), SCRAPE_EVERY_MS))
        timers.push(setInterval(() => track(probeAgent()), AGENT_EVERY_MS))
        timers.push(setInterval(() => opts.progress.update(line()), 1000))
        // Kills at every interval but not in the last seconds (time to see the replacement).
        for (let at = killEvery; at <= opts.seconds - Math.min(killEvery, 10); at += killEvery) timers.push(setTimeout(killWorker, at * 1000))
        timers.push(setTimeout(() => track(startFlood()), (opts.seconds * 1000) / 2))
      },
      onProgress: (d, e) => { done = d; errors = e }
    })
    for (const t of timers) clearInterval(t)
    await Promise.allSettled([...pending])
    // The last scrape sees the last counts, the flood's rejections, and the last replacement.
    const deadline = performance.now() + REPLACE_WITHIN_MS
    do {
      await new Promise((resolve) => setTimeout(resolve, 1100))
      await scrapeOnce()
    } while (kills.some((k) => k.replacedAfterMs === undefined) && performance.now() < deadline)
    sampleRss()
    flood.rejectedAfter = rejected(scrape.text)
    flood.droppedAfter = dropped(scrape.text)
    for (const pid of killed) { const row = rss.get(pid); if (row !== undefined) row.killed = true }

    const processes = [...rss.values()].map((r) => ({ ...r, firstMb: round(r.firstMb, 1), maxMb: round(r.maxMb, 1), lastMb: round(r.lastMb, 1) }))
    const overBound = processes.filter((r) => r.maxMb > opts.rssBoundMb)
    const notReplaced = kills.filter((k) => k.replacedAfterMs === undefined || k.replacedAfterMs > REPLACE_WITHIN_MS)
    const lastKill = kills[kills.length - 1]
    const rejectedCounted = flood.rejectedAfter - flood.rejectedBefore
    const droppedKernel = flood.droppedAfter - flood.droppedBefore
    const checks: SoakCheck[] = [
      { check: `RSS of every process under ${opts.rssBoundMb} MiB`, pass: overBound.length === 0, detail: `highest ${round(Math.max(0, ...processes.map((r) => r.maxMb)), 1)} MiB over ${processes.length} processes${overBound.length > 0 ? `; over: ${overBound.map((r) => `${r.role} ${r.pid} ${r.maxMb}`).join(', ')}` : ''}` },
      { check: 'no counter on /metrics went backwards', pass: scrape.backwards.length === 0 && scrape.count >= 2, detail: `${scrape.count} scrapes, ${scrape.failures} failed${scrape.backwards.length > 0 ? `; ${scrape.backwards.slice(0, 3).join('; ')}` : ''}` },
      // Prometheus reads even a last-bit step back as a reset: reported, not failed (the node sums floats in varying order).
      { check: 'no float sum stepped back by rounding', pass: scrape.rounding.length === 0, warnOnly: true, detail: scrape.rounding.length === 0 ? 'none' : `${scrape.rounding.length}: ${scrape.rounding.slice(0, 2).join('; ')}` },
      { check: 'the agent answered every check', pass: agent.failures === 0 && agent.probes > 0, detail: `${agent.probes - agent.failures}/${agent.probes}, slowest ${round(agent.maxMs, 1)} ms` },
      { check: `every killed worker replaced within ${REPLACE_WITHIN_MS / 1000} s`, pass: kills.length > 0 && notReplaced.length === 0, detail: `${kills.length} kills; replaced after ${kills.map((k) => k.replacedAfterMs === undefined ? 'never' : `${round(k.replacedAfterMs / 1000, 1)} s`).join(', ')}` },
      { check: 'handshakes served after the last kill', pass: lastKill !== undefined && load.handshakes > lastKill.handshakesBefore, detail: lastKill !== undefined ? `${lastKill.handshakesBefore} before it, ${load.handshakes} at the end` : 'no kill' },
      { check: 'the sync flood was read and counted as rejected', pass: flood.done && rejectedCounted > 0, detail: `${flood.datagrams} junk datagrams sent: ${rejectedCounted} rejected by the node, ${droppedKernel} dropped by the kernel (counted), ${flood.datagrams - rejectedCounted - droppedKernel} unaccounted` }
    ]
    const report: SoakReport = {
      seconds: opts.seconds,
      rssBoundMb: opts.rssBoundMb,
      workers,
      handshakes: load.handshakes,
      resumed: load.resumed,
      errors: load.errors,
      workerKills: kills.length,
      killEverySeconds: killEvery,
      syncFlood: { datagrams: flood.datagrams, rejectedCounted, droppedKernel },
      scrapes: scrape.count,
      agentProbes: agent.probes,
      agentFailures: agent.failures,
      agentMaxMs: round(agent.maxMs, 1),
      processes,
      checks
    }
    const failed = checks.filter((c) => !c.pass && c.warnOnly !== true).length
    if (failed > 0) report.failure = { primaryAlive: fs.existsSync(`/proc/${primary}`), nodeOutput: target.lastOutput() }
    opts.progress.line(`soak: ${checks.filter((c) => c.pass).length} checks passed, ${failed} failed, ${checks.length - failed - checks.filter((c) => c.pass).length} warnings`)
    return report
  } finally {
    for (const t of timers) clearInterval(t)
    await Promise.allSettled([...pending])
    await target.stop()
  }
}

export function soakTable (r: SoakReport): string {
  return [
    `${r.seconds} s of mixed handshakes (new and returning, TLS 1.2 IDs and TLS 1.3 tickets) against ${r.workers} workers: ${r.handshakes} handshakes, ${r.resumed} resumed, ${r.errors} failed connections (those cut by the kills among them); a worker killed every ${r.killEverySeconds} s (${r.workerKills}); ${r.syncFlood.datagrams} junk datagrams at the sync port halfway`,
    '',
    table(['process', 'pid', 'RSS samples', 'first MiB', 'max MiB', 'last MiB', `bound MiB`, 'killed'],
      r.processes.map((p) => [p.role, p.pid, p.samples, p.firstMb, p.maxMb, p.lastMb, r.rssBoundMb, p.killed ? 'kill -9' : ''])),
    '',
    table(['check', 'result', 'detail'], r.checks.map((c) => [c.check, c.pass ? 'pass' : c.warnOnly === true ? 'warn' : 'FAIL', c.detail])),
    ...(r.failure !== undefined ? ['', `the primary was ${r.failure.primaryAlive ? 'still alive' : 'gone'} at the end; the node's last output:`, ...r.failure.nodeOutput] : [])
  ].join('\n')
}
