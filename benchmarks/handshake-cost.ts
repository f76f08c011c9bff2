import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { LabError } from '../src/errors.js'
import { processTree } from '../src/lab/proc-cpu.js'
import { describeExit, waitForClose, waitForLine } from '../src/lab/child-waits.js'
import { spawnChild, stopChild, TLSFLEET_CLI } from '../src/lab/processes.js'
import { freeTcpPort } from '../src/util/free-port.js'
import { onLines } from '../src/util/lines.js'
import { round } from './handshake.js'
import type { Progress } from './progress.js'
import { NODE_GOALS, table } from './report.js'
import { readDump, runProgram, valgrindVersion, type DumpCount } from './callgrind.js'

/**
 * Server work per handshake counted in instructions (valgrind's callgrind), tlsfleet against the
 * plain Node terminator on the same certificate: the ratio the handshake suite measures in CPU
 * time, without the ±10% a shared machine adds to each time. Each server runs once under
 * callgrind (`--trace-children`: tlsfleet's primary and its one worker), `node
 * --single-threaded --no-memory-reducer` (no compiler or GC threads; no collections timed by
 * the wall clock, which valgrind slows 50-fold), a 512 MB initial old space (no mark-compact
 * falls in a window by chance) and a fixed 2 MB young generation (V8 would size it by the
 * allocation rate per wall-clock second, which valgrind and the machine's load move). Per
 * profile: --cost-warmup connections, counters zeroed (`callgrind_control -z`), --cost-count
 * connections, counters dumped (`-d`); every process of the server counts. V8 compiling
 * JavaScript in the window (warm-up, in bursts long after the first connections) is counted
 * apart and left out of the ratio. Left out, as in any instruction count: the kernel's work
 * (TCP, the backend connection) and cache misses.
 */
export const COST_PROFILES = ['full-1.3', 'resume-1.2-ticket', 'resume-1.2-id', 'resume-1.3-ticket'] as const
/** What the counting client can do: full handshakes, or resuming by ticket or (TLS 1.2) by session ID. */
export const COST_PROFILES_SUPPORTED: readonly string[] = ['full-1.2', 'full-1.3', 'resume-1.2-ticket', 'resume-1.2-id', 'resume-1.3-ticket']
/** `tlsfleet-pp2`: tlsfleet with --proxy-protocol-in v2, its client sending a PROXY v2 header first. */
export type CostTarget = 'tlsfleet' | 'tlsfleet-pp2' | 'node'
export const COST_TARGETS: readonly CostTarget[] = ['node', 'tlsfleet', 'tlsfleet-pp2']

export interface HandshakeCostRow {
  profile: string
  target: CostTarget
  handshakes: number
  resumedShare: number
  /** Everything counted in the window, per handshake. */
  instructionsPerHandshake: number
  /** Of which V8 compiling JavaScript (warm-up still under way: bursts of re-optimisation). */
  compilePerHandshake: number
  /** instructionsPerHandshake - compilePerHandshake: what a server that has finished warming up pays. */
  steadyPerHandshake: number
}

export interface HandshakeCostReport {
  cert: string
  rows: HandshakeCostRow[]
  /**
   * Per profile and tlsfleet target: over node's row of the reference profile (NODE_GOALS: the
   * plain server cannot resume by session ID, so resume-1.2-id is held against its ticket
   * resumption), steady (compilation left out) and with everything counted.
   */
  ratios: Array<{ profile: string; target: CostTarget; reference: string; tlsfleetOverNode: number; withCompile: number; goal: number }>
  valgrind: string
}

const HERE = path.dirname(fileURLToPath(import.meta.url))
const CLIENT = path.join(HERE, 'handshake-cost-client.js')
const NODE_FLAGS = ['--single-threaded', '--no-memory-reducer', '--initial-old-space-size=512', '--min-semi-space-size=2', '--max-semi-space-size=2']

interface CountedServer { child: ChildProcess; port: number; outDir: string; output: string[] }

async function startCounted (target: CostTarget, opts: { pem: string; backendPort: number; dir: string }): Promise<CountedServer> {
  const port = await freeTcpPort('127.0.0.1')
  const outDir = fs.mkdtempSync(path.join(opts.dir, `cost-${target}-`))
  const valgrind = ['--tool=callgrind', '--trace-children=yes', `--callgrind-out-file=${path.join(outDir, 'cg-%p.out')}`, process.execPath, ...NODE_FLAGS]
  const server = target === 'node'
    ? [path.join(HERE, 'servers', 'node-tls-server.js'), opts.pem, String(port), String(opts.backendPort)]
    : [TLSFLEET_CLI, 'node', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${opts.backendPort}`, '--workers', '1', '--cert', opts.pem,
        '--admin-listen', `127.0.0.1:${await freeTcpPort('127.0.0.1', new Set([port]))}`, '--state-dir', path.join(outDir, 'state'),
        // No hang watch: valgrind slows the worker's answers to the primary 50-fold.
        '--log-level', 'warn', '--grace-period', '1', '--worker-hang-timeout', '0', ...(target === 'tlsfleet-pp2' ? ['--proxy-protocol-in', 'v2'] : [])]
  const child = spawnChild('valgrind', [...valgrind, ...server])
  const output: string[] = []
  const keep = (line: string): void => { output.push(line); if (output.length > 20) output.shift() }
  onLines(child.stdout, keep)
  onLines(child.stderr, keep)
  // Under valgrind a tlsfleet node takes a minute or two to start.
  const deadline = Date.now() + 300_000
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stopChild(child, 2000)
      const how = child.exitCode !== null || child.signalCode !== null ? `exited (code ${String(child.exitCode)}${child.signalCode !== null ? `, ${child.signalCode}` : ''})` : 'did not listen within 300 s'
      throw new LabError(`handshake-cost suite: ${target} under valgrind ${how}:\n${output.join('\n')}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }
  return { child, port, outDir, output }
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
    // A SYN the server's full backlog drops is retried by the kernel for minutes: bounded here.
    socket.setTimeout(2000, () => { socket.destroy(); resolve(false) })
  })
}

/** Instructions each process dumped since the last zeroing (each new dump file), and the share spent compiling. */
function dumped (outDir: string, seen: Set<string>): DumpCount {
  const sum: DumpCount = { total: 0, compile: 0 }
  for (const name of fs.readdirSync(outDir).filter((n) => /^cg-\d+\.out\.\d+$/.test(n) && !seen.has(n))) {
    seen.add(name)
    const count = readDump(fs.readFileSync(path.join(outDir, name), 'utf8'))
    sum.total += count.total
    sum.compile += count.compile
  }
  return sum
}

/** callgrind_control zeroes or dumps in a second or two; it waits on the server's next instructions. */
const CONTROL_BOUND_MS = 120_000

/**
 * How long the client may take for N connections under callgrind: about 50-100 ms each on an
 * idle machine, so 500 ms each plus two minutes (valgrind's own start, a loaded machine) only
 * ends a client that is stuck, not a slow one.
 */
export function clientBoundMs (connections: number): number { return 120_000 + 500 * connections }

/**
 * The client's command. TLSFLEET_BENCH_COST_CLIENT replaces its script (a test makes the client
 * fail before warming up with a script that does not exist).
 */
function clientCommand (): string { return process.env.TLSFLEET_BENCH_COST_CLIENT ?? CLIENT }

async function measure (server: CountedServer, target: CostTarget, profile: string, count: number, warm: number, seen: Set<string>): Promise<{ instructions: DumpCount; resumed: number }> {
  const client = spawnChild(process.execPath, [clientCommand(), String(server.port), profile, String(warm), String(count), target === 'tlsfleet-pp2' ? 'pp2' : ''])
  const what = `handshake-cost suite: the ${target} ${profile} client`
  const pids = (): string[] => processTree(server.child.pid as number).map(String)
  // Both waits end at the client's exit or after their bound, the client stopped (child-waits.ts).
  await waitForLine(client, (line) => line === 'warm', { what, waitingFor: `warming up (${warm} connections)`, timeoutMs: clientBoundMs(warm) })
  let result = ''
  onLines(client.stdout, (line) => { result = line })
  try {
    await runProgram('callgrind_control', ['-z', ...pids()], 'callgrind_control -z', CONTROL_BOUND_MS)
  } catch (err) {
    await stopChild(client, 2000)
    throw err
  }
  try { process.kill(client.pid as number, 'SIGUSR2') } catch { /* it exited: waitForClose says how */ }
  const code = await waitForClose(client, { what, timeoutMs: clientBoundMs(count) })
  if (code !== 0 || result === '') throw new LabError(`${what} ${describeExit(client, { before: 'printing its count' })}`)
  await runProgram('callgrind_control', ['-d', ...pids()], 'callgrind_control -d', CONTROL_BOUND_MS)
  const { resumed } = JSON.parse(result) as { resumed: number }
  return { instructions: dumped(server.outDir, seen), resumed }
}

export async function runHandshakeCostSuite (opts: { progress: Progress; pem: string; certKind: string; backendPort: number; dir: string; count: number; warmup: number; targets?: CostTarget[]; profiles?: readonly string[] }): Promise<HandshakeCostReport> {
  const rows: HandshakeCostRow[] = []
  const profiles = opts.profiles ?? COST_PROFILES
  for (const target of opts.targets ?? ['node', 'tlsfleet'] as CostTarget[]) {
    opts.progress.update(`handshake-cost: starting ${target} under valgrind (a minute or two)`)
    const server = await startCounted(target, opts)
    const seen = new Set<string>()
    try {
      // The plain server runs each profile's reference (it cannot resume by session ID).
      const own = target === 'node' ? [...new Set(profiles.map(referenceOf))] : profiles
      for (const profile of own) {
        opts.progress.update(`handshake-cost: ${target} ${profile}: ${opts.count} connections under callgrind`)
        // Warm-up: until V8 has compiled what the profile runs (its first connections cost several times the rest).
        const { instructions, resumed } = await measure(server, target, profile, opts.count, opts.warmup, seen)
        const row: HandshakeCostRow = {
          profile,
          target,
          handshakes: opts.count,
          resumedShare: round(resumed / opts.count, 3),
          instructionsPerHandshake: Math.round(instructions.total / opts.count),
          compilePerHandshake: Math.round(instructions.compile / opts.count),
          steadyPerHandshake: Math.round((instructions.total - instructions.compile) / opts.count)
        }
        rows.push(row)
        opts.progress.line(`handshake-cost: ${target} ${profile}: ${row.steadyPerHandshake} instructions per handshake, ${row.compilePerHandshake} more compiling JavaScript (${resumed}/${opts.count} resumed)`)
      }
    } finally {
      await stopChild(server.child, 10_000)
    }
  }
  const ratios: HandshakeCostReport['ratios'] = []
  for (const profile of profiles) {
    const reference = referenceOf(profile)
    const node = rows.find((r) => r.profile === reference && r.target === 'node')
    for (const ours of rows.filter((r) => r.profile === profile && r.target !== 'node')) {
      if (node === undefined) continue
      ratios.push({
        profile,
        target: ours.target,
        reference,
        tlsfleetOverNode: round(ours.steadyPerHandshake / node.steadyPerHandshake, 3),
        withCompile: round(ours.instructionsPerHandshake / node.instructionsPerHandshake, 3),
        goal: NODE_GOALS.find((g) => g.profile === profile)?.goal ?? Number.NaN
      })
    }
  }
  return { cert: opts.certKind, rows, ratios, valgrind: await valgrindVersion() }
}

/** The plain server's profile a tlsfleet profile is held against (issue 9's goals). */
function referenceOf (profile: string): string {
  return NODE_GOALS.find((g) => g.profile === profile)?.reference ?? profile
}

export function handshakeCostTable (r: HandshakeCostReport): string {
  const row = (profile: string, target: CostTarget): HandshakeCostRow | undefined => r.rows.find((x) => x.profile === profile && x.target === target)
  const count = (found: HandshakeCostRow | undefined): string =>
    found === undefined ? '-' : `${found.steadyPerHandshake}${found.resumedShare < 1 && found.profile.startsWith('resume') ? ` (${Math.round(found.resumedShare * 100)}% resumed)` : ''}`
  const lines = r.ratios.map((x) => {
    const node = row(x.reference, 'node')
    const ours = row(x.profile, x.target)
    return [
      x.profile, x.target, count(node), count(ours),
      `${x.tlsfleetOverNode.toFixed(3)} ${x.tlsfleetOverNode <= x.goal ? 'ok' : 'over'} (goal ${x.goal.toFixed(2)})`,
      `${node?.compilePerHandshake ?? '-'} / ${ours?.compilePerHandshake ?? '-'}`,
      x.withCompile.toFixed(3)
    ]
  })
  // Rows without a ratio (a target run alone) are still shown.
  for (const x of r.rows) {
    if (!r.ratios.some((y) => (y.profile === x.profile && y.target === x.target) || (x.target === 'node' && y.reference === x.profile))) {
      lines.push([x.profile, x.target, x.target === 'node' ? count(x) : '-', x.target === 'node' ? '-' : count(x), '-', `${x.compilePerHandshake}`, '-'])
    }
  }
  return [
    table(['profile', 'tlsfleet target', 'node, instructions/hs', 'tlsfleet, instructions/hs', 'tlsfleet ÷ node', 'compiling JS (node / tlsfleet)', '÷ with compiling'], lines),
    '',
    `counted by ${r.valgrind} (callgrind) over every process of each server, node ${NODE_FLAGS.join(' ')}; user-space instructions only (the kernel's TCP work is not in them); ` +
      'V8 compiling JavaScript (calls into its Compiler:: entry points) is left out of the instruction columns: warm-up that a long-running server has finished. ' +
      'resume-1.2-id is held against node\'s resume-1.2-ticket (a plain tls.Server cannot resume by session ID)'
  ].join('\n')
}
