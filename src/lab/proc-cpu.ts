import { execFileSync } from 'node:child_process'
import fs from 'node:fs'

/**
 * Server cost from the OS accounting: utime + stime of a process and all its descendants,
 * read from /proc/<pid>/stat (Linux). Handshakes per second say little on a small machine
 * where the clients saturate first; CPU seconds spent by the server per handshake do not.
 */

let clockTicks: number | undefined

/** `getconf CLK_TCK` (100 on every Linux seen so far), read once. */
export function clockTicksPerSecond (): number {
  if (clockTicks !== undefined) return clockTicks
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    clockTicks = Number.isFinite(value) && value > 0 ? value : 100
  } catch {
    clockTicks = 100
  }
  return clockTicks
}

interface ProcStat { pid: number; ppid: number; ticks: number }

/** Parse one /proc/<pid>/stat line; the command name (field 2) may contain spaces and parens. */
export function parseProcStat (text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')')
  if (close < 0) return undefined
  const pid = Number(text.slice(0, text.indexOf(' ')))
  // After ") ": state(3) ppid(4) ... utime(14) stime(15), 1-based as in proc(5).
  const fields = text.slice(close + 2).split(' ')
  const ppid = Number(fields[1])
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  if (!Number.isFinite(pid) || !Number.isFinite(ppid) || !Number.isFinite(utime) || !Number.isFinite(stime)) return undefined
  return { pid, ppid, ticks: utime + stime }
}

function readAllStats (): ProcStat[] {
  const stats: ProcStat[] = []
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const parsed = parseProcStat(fs.readFileSync(`/proc/${entry}/stat`, 'utf8'))
      if (parsed !== undefined) stats.push(parsed)
    } catch { /* exited meanwhile */ }
  }
  return stats
}

/** Pids of `root` and every process below it. */
export function processTree (root: number): number[] {
  return treeStats(readAllStats(), [root]).map((s) => s.pid)
}

function treeStats (all: ProcStat[], roots: number[]): ProcStat[] {
  const children = new Map<number, ProcStat[]>()
  for (const s of all) {
    const list = children.get(s.ppid) ?? []
    list.push(s)
    children.set(s.ppid, list)
  }
  const byPid = new Map(all.map((s) => [s.pid, s]))
  const out: ProcStat[] = []
  const queue = [...roots]
  const seen = new Set<number>()
  while (queue.length > 0) {
    const pid = queue.shift() as number
    if (seen.has(pid)) continue
    seen.add(pid)
    const stat = byPid.get(pid)
    if (stat !== undefined) out.push(stat)
    for (const child of children.get(pid) ?? []) queue.push(child.pid)
  }
  return out
}

/**
 * CPU seconds used so far by the trees under `roots`. Children that already exited and were
 * reaped are counted by the kernel in their parent's cutime/cstime, which we do not read: the
 * servers measured here keep their workers alive for the whole run.
 */
export function treeCpuSeconds (roots: number[]): number {
  const ticks = treeStats(readAllStats(), roots).reduce((sum, s) => sum + s.ticks, 0)
  return ticks / clockTicksPerSecond()
}

/**
 * A CPU meter over a fixed set of processes: the tree is walked once at `start` (and again at
 * each reading, to catch a replaced worker), and per-pid maxima are kept so a process that
 * exits mid-run does not make the total go backwards.
 */
export class CpuMeter {
  private readonly base = new Map<number, number>()
  private readonly last = new Map<number, number>()

  constructor (private readonly roots: () => number[]) {
    for (const s of treeStats(readAllStats(), roots())) { this.base.set(s.pid, s.ticks); this.last.set(s.pid, s.ticks) }
  }

  /** CPU seconds used since the meter was created. */
  read (): number {
    for (const s of treeStats(readAllStats(), this.roots())) {
      if (!this.base.has(s.pid)) this.base.set(s.pid, 0) // born after the start: all of it counts
      this.last.set(s.pid, Math.max(s.ticks, this.last.get(s.pid) ?? 0))
    }
    let ticks = 0
    for (const [pid, value] of this.last) ticks += value - (this.base.get(pid) ?? 0)
    return ticks / clockTicksPerSecond()
  }
}

/**
 * CPU seconds of each group of trees, from one pass over /proc: one group per node (its tlsfleet
 * process tree, and its own HAProxy's when it has one); an empty group counts 0.
 */
export function cpuSecondsByRoot (groups: Array<number | number[] | undefined>): number[] {
  const all = readAllStats()
  const hz = clockTicksPerSecond()
  return groups.map((group) => {
    const roots = group === undefined ? [] : Array.isArray(group) ? group : [group]
    return roots.length === 0 ? 0 : treeStats(all, roots).reduce((sum, s) => sum + s.ticks, 0) / hz
  })
}

/** A process tree's CPU in four parts, seconds: its root process and its descendants, each as main thread and other threads. */
export interface CpuSplit { rootMain: number; rootOther: number; childrenMain: number; childrenOther: number }

/** One thread's CPU ticks so far, and where it sits in the tree. */
export interface ThreadTicks { key: string; root: boolean; main: boolean; ticks: number }

/**
 * What each thread used between two readings, summed into the four parts. A thread born after
 * `before` counts whole; one gone by `after` is lost (the split is a breakdown, the total is
 * CpuMeter's).
 */
export function splitTicks (before: ThreadTicks[], after: ThreadTicks[], hz: number): CpuSplit {
  const base = new Map(before.map((t) => [t.key, t.ticks]))
  const split: CpuSplit = { rootMain: 0, rootOther: 0, childrenMain: 0, childrenOther: 0 }
  for (const t of after) {
    const used = Math.max(0, t.ticks - (base.get(t.key) ?? 0)) / hz
    if (t.root) split[t.main ? 'rootMain' : 'rootOther'] += used
    else split[t.main ? 'childrenMain' : 'childrenOther'] += used
  }
  return split
}

/** Every thread of the trees under `roots` (/proc/PID/task/TID/stat; the main thread's TID is its PID). */
export function treeThreads (roots: number[]): ThreadTicks[] {
  const rootSet = new Set(roots)
  const out: ThreadTicks[] = []
  for (const proc of treeStats(readAllStats(), roots)) {
    let tids: string[]
    try { tids = fs.readdirSync(`/proc/${proc.pid}/task`) } catch { continue }
    for (const tid of tids) {
      try {
        const parsed = parseProcStat(fs.readFileSync(`/proc/${proc.pid}/task/${tid}/stat`, 'utf8'))
        if (parsed !== undefined) out.push({ key: `${proc.pid}/${tid}`, root: rootSet.has(proc.pid), main: Number(tid) === proc.pid, ticks: parsed.ticks })
      } catch { /* ended meanwhile */ }
    }
  }
  return out
}

/** CpuMeter's breakdown: where in a process tree the CPU went (root or children, main thread or others). */
export class CpuSplitMeter {
  private readonly before: ThreadTicks[]

  constructor (private readonly roots: () => number[]) {
    this.before = treeThreads(roots())
  }

  read (): CpuSplit {
    return splitTicks(this.before, treeThreads(this.roots()), clockTicksPerSecond())
  }
}
