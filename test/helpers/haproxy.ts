import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs/promises'
import { rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { HaproxyRuntimeApi } from '../../src/haproxy/runtime-api.js'
import { freePorts } from './ports.js'

/** The `defaults` section the tests' HAProxy configs share: TCP mode, short timeouts. */
export const TCP_DEFAULTS = `
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  timeout check 1s
`

export interface HaproxyConfigContext {
  /** Free loopback TCP ports reserved for this instance (`opts.ports` of them). */
  ports: number[]
  /** Unix stats socket (level admin) the helper adds in a `global` section. */
  socketPath: string
  /** Temporary directory holding the config and the socket. */
  dir: string
}

export interface RunningHaproxy {
  socketPath: string
  pid: number
  dir: string
  ports: number[]
  api: HaproxyRuntimeApi
  /** Everything HAProxy wrote to stdout/stderr so far (for assertion messages). */
  output: () => string
  stop: () => Promise<void>
}

export interface StartHaproxyOptions {
  /** How many free ports to reserve for the config (default 4). */
  ports?: number
  /** Bound on waiting for the stats socket to answer (default 10 s). */
  timeoutMs?: number
  /** Registers `stop()` with `t.after`, so a failing test still cleans up. */
  t?: { after: (fn: () => Promise<void> | void) => void }
  /** Run in this directory, kept on stop, instead of a fresh one: a restart finds the same socket path and files. */
  dir?: string
  /** A reload: start with `-sf PID` (the old process finishes its connections and exits) and wait for the new pid to answer. */
  replacing?: number
}

// Last-resort cleanup when a test crashes before its `stop()` runs.
const running = new Set<ChildProcess>()
const dirs = new Set<string>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

async function waitExit (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true
  return await new Promise((resolve) => {
    const timer = setTimeout(() => { child.removeListener('exit', onExit); resolve(false) }, ms)
    const onExit = (): void => { clearTimeout(timer); resolve(true) }
    child.once('exit', onExit)
  })
}

/**
 * Start a real `haproxy -db -f cfg` with `config` written into a fresh temp dir. A `global`
 * section declaring `stats socket <dir>/admin.sock level admin` is prepended (HAProxy merges
 * several `global` sections). Resolves once `show info` answers on that socket.
 */
export async function startHaproxy (config: string | ((ctx: HaproxyConfigContext) => string), opts: StartHaproxyOptions = {}): Promise<RunningHaproxy> {
  const ownDir = opts.dir === undefined
  const dir = opts.dir ?? await fs.mkdtemp(path.join(os.tmpdir(), 'tlsfleet-haproxy-'))
  if (ownDir) dirs.add(dir)
  const socketPath = path.join(dir, 'admin.sock')
  const ports = await freePorts(opts.ports ?? 4)
  const body = typeof config === 'string' ? config : config({ ports, socketPath, dir })
  const text = `global\n  stats socket ${socketPath} mode 600 level admin\n  stats timeout 10s\n\n${body}\n`
  const cfgPath = path.join(dir, 'haproxy.cfg')
  await fs.writeFile(cfgPath, text)

  const args = ['-db', '-f', cfgPath, ...(opts.replacing !== undefined ? ['-sf', String(opts.replacing)] : [])]
  const child = spawn('haproxy', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  let output = ''
  const collect = (chunk: Buffer): void => { output = (output + chunk.toString()).slice(-65536) }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  let spawnError: Error | undefined
  child.once('error', (err) => { spawnError = err })
  child.once('exit', () => running.delete(child))

  let stopped: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopped ??= (async () => {
      if (!await waitExit(child, 0)) {
        child.kill('SIGTERM')
        if (!await waitExit(child, 3000)) {
          child.kill('SIGKILL')
          await waitExit(child, 3000)
        }
      }
      running.delete(child)
      if (ownDir) {
        await fs.rm(dir, { recursive: true, force: true })
        dirs.delete(dir)
      }
    })()
    await stopped
  }
  opts.t?.after(stop)

  const api = new HaproxyRuntimeApi(socketPath, { timeoutMs: 2000 })
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000)
  for (let attempt = 0; ; attempt++) {
    if (spawnError !== undefined || child.exitCode !== null || child.signalCode !== null) {
      await stop()
      throw new Error(`haproxy exited before its stats socket answered (${spawnError?.message ?? `code ${child.exitCode}`}):\n${output}\n--- config ---\n${text}`)
    }
    try {
      const info = await api.command('show info')
      // On a reload the old process may answer on the socket until the new one takes it.
      if (info.includes('Name: HAProxy') && (opts.replacing === undefined || info.includes(`\nPid: ${String(child.pid)}\n`))) break
    } catch { /* not listening yet */ }
    if (Date.now() > deadline || attempt > 500) {
      await stop()
      throw new Error(`haproxy stats socket did not answer within ${opts.timeoutMs ?? 10_000} ms:\n${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  if (child.pid === undefined) throw new Error('haproxy has no pid')
  return { socketPath, pid: child.pid, dir, ports, api, output: () => output, stop }
}

/** Poll `check` every 50 ms until it returns a value that is not undefined (bounded). */
export async function pollUntil<T> (what: string, check: () => Promise<T | undefined>, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined) return value
    } catch (err) { last = err }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
