import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { freeTcpPort } from '../src/util/free-port.js'
import { LabError } from '../src/errors.js'
import { onLines } from '../src/util/lines.js'
import { waitForLine } from '../src/lab/child-waits.js'
import { spawnChild, stopChild, TLSFLEET_CLI, which } from '../src/lab/processes.js'

/**
 * The TLS terminators compared, each pinned to the same CPUs and forwarding to the same backend.
 * `tlsfleet-pp2` is tlsfleet with `--proxy-protocol-in v2`, its clients sending a PROXY v2
 * header first, as behind HAProxy's send-proxy-v2.
 */
export type TargetKind = 'tlsfleet' | 'tlsfleet-pp2' | 'haproxy' | 'hitch' | 'node'
export const TARGET_KINDS: readonly TargetKind[] = ['tlsfleet', 'tlsfleet-pp2', 'haproxy', 'hitch', 'node']

export interface Target {
  kind: TargetKind
  label: string
  port: number
  /** Root pid of the server's process tree (CPU accounting walks its descendants). */
  pid: number
  /** Its clients send a PROXY v2 header before the ClientHello. */
  proxyV2In: boolean
  /** Its last 30 lines of stdout and stderr (what to show when a run goes wrong). */
  lastOutput: () => string[]
  stop: () => Promise<void>
}

export interface TargetOptions {
  pem: string
  backendPort: number
  /** CPU list the server is pinned to, e.g. "1". */
  cpus: string
  /** Worker processes / threads (default: number of CPUs in `cpus`). */
  workers: number
  dir: string
  /** Extra flags for tlsfleet. */
  tlsfleetArgs?: string[]
  /** tlsfleet's admin API port (default: a free one). */
  adminPort?: number
  /** Extra environment (NODE_OPTIONS for --cpu-prof) for tlsfleet and the plain Node server. */
  env?: NodeJS.ProcessEnv
}

const HERE = path.dirname(fileURLToPath(import.meta.url))

export function cpuCount (cpus: string): number {
  let n = 0
  for (const part of cpus.split(',')) {
    const [a, b] = part.split('-').map(Number)
    n += b !== undefined ? (b - (a ?? 0) + 1) : 1
  }
  return n
}

/** Whether the binary a target needs is installed (tlsfleet and node always are). */
export function targetAvailable (kind: TargetKind): boolean {
  if (kind === 'haproxy') return which('haproxy') !== undefined
  if (kind === 'hitch') return which('hitch') !== undefined
  return true
}

async function waitForPort (child: ChildProcess, port: number, what: string, output: string[]): Promise<void> {
  const net = await import('node:net')
  const deadline = Date.now() + 20_000
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new LabError(`${what} exited at start:\n${output.join('\n')}`)
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
      // A SYN a full backlog drops is retried by the kernel for minutes: bounded here.
      s.setTimeout(2000, () => { s.destroy(); resolve(false) })
    })
    if (open) return
    if (Date.now() > deadline) throw new LabError(`${what} did not listen on 127.0.0.1:${port} within 20 s:\n${output.join('\n')}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export async function startTarget (kind: TargetKind, opts: TargetOptions): Promise<Target> {
  const taken = new Set<number>() // the TLS and admin ports must differ
  const port = await freeTcpPort('127.0.0.1', taken)
  const output: string[] = []
  let child: ChildProcess
  let label: string = kind
  if (kind === 'tlsfleet' || kind === 'tlsfleet-pp2') {
    const pp2 = kind === 'tlsfleet-pp2' ? ['--proxy-protocol-in', 'v2'] : []
    child = spawnChild(process.execPath, [TLSFLEET_CLI, 'node', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${opts.backendPort}`,
      '--workers', String(opts.workers), '--cert', opts.pem, '--admin-listen', `127.0.0.1:${opts.adminPort ?? await freeTcpPort('127.0.0.1', taken)}`,
      '--state-dir', path.join(opts.dir, `${kind}-state`), '--log-format', 'json', '--log-level', 'warn', '--grace-period', '1', ...pp2, ...(opts.tlsfleetArgs ?? [])], { cpus: opts.cpus, ...(opts.env !== undefined ? { env: opts.env } : {}) })
    label = `tlsfleet (${opts.workers} worker${opts.workers > 1 ? 's' : ''}${pp2.length > 0 ? ', PROXY v2 in' : ''})`
  } else if (kind === 'haproxy') {
    const cfg = path.join(opts.dir, `haproxy-${port}.cfg`)
    fs.writeFileSync(cfg, [
      'global',
      `    nbthread ${opts.workers}`,
      '    ssl-default-bind-options ssl-min-ver TLSv1.2',
      '    tune.ssl.cachesize 100000',
      'defaults',
      '    mode tcp',
      '    timeout connect 5s',
      '    timeout client 30s',
      '    timeout server 30s',
      'frontend tls',
      `    bind 127.0.0.1:${port} ssl crt ${opts.pem}`,
      '    default_backend app',
      'backend app',
      `    server app 127.0.0.1:${opts.backendPort}`,
      ''
    ].join('\n'))
    child = spawnChild('haproxy', ['-db', '-f', cfg], { cpus: opts.cpus })
    label = `haproxy (${opts.workers} thread${opts.workers > 1 ? 's' : ''}, ssl crt)`
  } else if (kind === 'hitch') {
    const args = [`--frontend=[127.0.0.1]:${port}`, `--backend=[127.0.0.1]:${opts.backendPort}`, `--workers=${opts.workers}`, '--tls-protos=TLSv1.2 TLSv1.3']
    if (process.getuid?.() === 0) args.push('--user=nobody')
    child = spawnChild('hitch', [...args, opts.pem], { cpus: opts.cpus })
    label = `hitch (${opts.workers} worker${opts.workers > 1 ? 's' : ''})`
  } else {
    child = spawnChild(process.execPath, [path.join(HERE, 'servers', 'node-tls-server.js'), opts.pem, String(port), String(opts.backendPort)], { cpus: opts.cpus, ...(opts.env !== undefined ? { env: opts.env } : {}) })
    label = 'node tls (1 process)'
  }
  onLines(child.stdout, (l) => { output.push(l); if (output.length > 30) output.shift() })
  onLines(child.stderr, (l) => { output.push(l); if (output.length > 30) output.shift() })
  try {
    await waitForPort(child, port, kind, output)
  } catch (err) {
    await stopChild(child, 2000)
    throw err
  }
  return { kind, label, port, pid: child.pid as number, proxyV2In: kind === 'tlsfleet-pp2', lastOutput: () => [...output], stop: async () => { await stopChild(child, 5000) } }
}

/** The shared backend, pinned to the client CPUs so it never competes with the server measured. */
export async function startBackend (cpus?: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = spawnChild(process.execPath, [path.join(HERE, 'servers', 'backend.js'), '0'], cpus !== undefined ? { cpus } : {})
  // Bounded, and ends at the backend's exit (child-waits.ts), which then has been stopped.
  const line = await waitForLine(child, (l) => /^listening \d+/.test(l), { what: 'bench backend', waitingFor: 'listening', timeoutMs: 10_000 })
  const port = Number(/^listening (\d+)/.exec(line)?.[1])
  return { port, stop: async () => { await stopChild(child, 2000) } }
}
