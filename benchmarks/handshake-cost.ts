import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { LabError } from '../src/errors.js'
import { processTree } from '../src/lab/proc-cpu.js'
import { spawnChild, stopChild, TLSFLEET_CLI } from '../src/lab/processes.js'
import { freeTcpPort } from '../src/util/free-port.js'
import { onLines } from '../src/util/lines.js'
import { round } from './handshake.js'
import type { Progress } from './progress.js'
import { table } from './report.js'
import { runProgram, valgrindVersion } from './callgrind.js'

/**
 * Server work per handshake counted in instructions (valgrind's callgrind), tlsfleet against the
 * plain Node terminator on the same certificate: the ratio the handshake suite measures in CPU
 * time, without the ±10% a shared machine adds to each time. Each server runs once under
 * callgrind (`--trace-children`: tlsfleet's primary and its one worker), `node
 * --single-threaded --no-memory-reducer` (no compiler or GC threads; no collections timed by
 * the wall clock, which valgrind slows 50-fold; a 512 MB initial old space, so that no
 * mark-compact falls in a window by chance). Per profile: up to 300 warm-up connections, counters
 * zeroed (`callgrind_control -z`), COUNT connections, counters dumped (`-d`); every process of
 * the server counts. Left out, as in any instruction count: the kernel's work (TCP, the
 * backend connection) and cache misses.
 */
export const COST_PROFILES = ['full-1.3', 'resume-1.2-ticket', 'resume-1.3-ticket'] as const
/** What the counting client can do: full handshakes, or resuming by ticket. */
export const COST_PROFILES_SUPPORTED: readonly string[] = ['full-1.2', 'full-1.3', 'resume-1.2-ticket', 'resume-1.3-ticket']
export type CostTarget = 'tlsfleet' | 'node'

export interface HandshakeCostRow {
  profile: string
  target: CostTarget
  handshakes: number
  resumedShare: number
  instructionsPerHandshake: number
}

export interface HandshakeCostReport {
  cert: string
  rows: HandshakeCostRow[]
  /** Per profile: tlsfleet ÷ node. */
  ratios: Array<{ profile: string; tlsfleetOverNode: number }>
  valgrind: string
}

const HERE = path.dirname(fileURLToPath(import.meta.url))
const CLIENT = path.join(HERE, 'handshake-cost-client.js')
const NODE_FLAGS = ['--single-threaded', '--no-memory-reducer', '--initial-old-space-size=512']

interface CountedServer { child: ChildProcess; port: number; outDir: string; output: string[] }

async function startCounted (target: CostTarget, opts: { pem: string; backendPort: number; dir: string }): Promise<CountedServer> {
  const port = await freeTcpPort('127.0.0.1')
  const outDir = fs.mkdtempSync(path.join(opts.dir, `cost-${target}-`))
  const valgrind = ['--tool=callgrind', '--trace-children=yes', `--callgrind-out-file=${path.join(outDir, 'cg-%p.out')}`, process.execPath, ...NODE_FLAGS]
  const server = target === 'node'
    ? [path.join(HERE, 'servers', 'node-tls-server.js'), opts.pem, String(port), String(opts.backendPort)]
    : [TLSFLEET_CLI, 'node', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${opts.backendPort}`, '--workers', '1', '--cert', opts.pem,
        '--admin-listen', `127.0.0.1:${await freeTcpPort('127.0.0.1', new Set([port]))}`, '--state-dir', path.join(outDir, 'state'),
        '--log-level', 'warn', '--grace-period', '1']
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
      throw new LabError(`handshake-cost suite: ${target} did not start under valgrind:\n${output.join('\n')}`)
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
  })
}

/** Instructions each process dumped since the last zeroing: callgrind's `summary:` line of each new dump file. */
function dumped (outDir: string, seen: Set<string>): number {
  let total = 0
  for (const name of fs.readdirSync(outDir).filter((n) => /^cg-\d+\.out\.\d+$/.test(n) && !seen.has(n))) {
    seen.add(name)
    const summary = /^summary: (\d+)$/m.exec(fs.readFileSync(path.join(outDir, name), 'utf8'))
    if (summary !== null) total += Number(summary[1])
  }
  return total
}

async function measure (server: CountedServer, profile: string, count: number, warm: number, seen: Set<string>): Promise<{ instructions: number; resumed: number }> {
  const client = spawnChild(process.execPath, [CLIENT, String(server.port), profile, String(warm), String(count)])
  const pids = (): string[] => processTree(server.child.pid as number).map(String)
  let result = ''
  const warmed = new Promise<void>((resolve) => onLines(client.stdout, (line) => { if (line === 'warm') resolve(); else result = line }))
  await warmed
  await runProgram('callgrind_control', ['-z', ...pids()], 'callgrind_control -z')
  return await new Promise((resolve, reject) => {
    client.once('exit', (code) => {
      if (code !== 0 || result === '') { reject(new LabError(`handshake-cost suite: the ${profile} client failed (exit ${String(code)})`)); return }
      runProgram('callgrind_control', ['-d', ...pids()], 'callgrind_control -d').then(() => {
        const { resumed } = JSON.parse(result) as { resumed: number }
        resolve({ instructions: dumped(server.outDir, seen), resumed })
      }, reject)
    })
    process.kill(client.pid as number, 'SIGUSR2')
  })
}

export async function runHandshakeCostSuite (opts: { progress: Progress; pem: string; certKind: string; backendPort: number; dir: string; count: number; targets?: CostTarget[]; profiles?: readonly string[] }): Promise<HandshakeCostReport> {
  const rows: HandshakeCostRow[] = []
  for (const target of opts.targets ?? ['node', 'tlsfleet'] as CostTarget[]) {
    opts.progress.update(`handshake-cost: starting ${target} under valgrind (a minute or two)`)
    const server = await startCounted(target, opts)
    const seen = new Set<string>()
    try {
      for (const profile of opts.profiles ?? COST_PROFILES) {
        opts.progress.update(`handshake-cost: ${target} ${profile}: ${opts.count} connections under callgrind`)
        // Warm-up: until V8 has compiled what the profile runs (its first connections cost several times the rest).
        const { instructions, resumed } = await measure(server, profile, opts.count, Math.min(300, opts.count), seen)
        const row: HandshakeCostRow = { profile, target, handshakes: opts.count, resumedShare: round(resumed / opts.count, 3), instructionsPerHandshake: Math.round(instructions / opts.count) }
        rows.push(row)
        opts.progress.line(`handshake-cost: ${target} ${profile}: ${row.instructionsPerHandshake} instructions per handshake (${resumed}/${opts.count} resumed)`)
      }
    } finally {
      await stopChild(server.child, 10_000)
    }
  }
  const ratios = [...new Set(rows.map((r) => r.profile))].flatMap((profile) => {
    const ours = rows.find((r) => r.profile === profile && r.target === 'tlsfleet')
    const node = rows.find((r) => r.profile === profile && r.target === 'node')
    return ours !== undefined && node !== undefined ? [{ profile, tlsfleetOverNode: round(ours.instructionsPerHandshake / node.instructionsPerHandshake, 3) }] : []
  })
  return { cert: opts.certKind, rows, ratios, valgrind: await valgrindVersion() }
}

export function handshakeCostTable (r: HandshakeCostReport): string {
  const profiles = [...new Set(r.rows.map((row) => row.profile))]
  const cell = (profile: string, target: CostTarget): string => {
    const row = r.rows.find((x) => x.profile === profile && x.target === target)
    return row === undefined ? '-' : `${row.instructionsPerHandshake}${row.resumedShare < 1 && profile.startsWith('resume') ? ` (${Math.round(row.resumedShare * 100)}% resumed)` : ''}`
  }
  return [
    table(['profile', 'node, instructions/handshake', 'tlsfleet, instructions/handshake', 'tlsfleet ÷ node'],
      profiles.map((p) => [p, cell(p, 'node'), cell(p, 'tlsfleet'), r.ratios.find((x) => x.profile === p)?.tlsfleetOverNode ?? '-'])),
    '',
    `counted by ${r.valgrind} (callgrind) over every process of each server, node ${NODE_FLAGS.join(' ')}; user-space instructions only (the kernel's TCP work is not in them)`
  ].join('\n')
}
