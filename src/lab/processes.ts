import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { LabError } from '../errors.js'
import { onLines } from '../util/lines.js'

/** bin/tlsfleet.js of this checkout or installed package. */
export const TLSFLEET_CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/tlsfleet.js')


// Every child the lab starts runs in its own process group (so Ctrl-C in the terminal reaches
// only the lab, which then stops them in order) and is killed with its group if the lab exits.
const children = new Set<ChildProcess>()
process.once('exit', () => { for (const child of children) killGroup(child, 'SIGKILL') })

// The 'exit' handler above does not run when the lab is SIGKILLed: a watchdog process then
// kills the groups (started on first use, detached, told about each group on its stdin).
let watchdog: ChildProcess | undefined
function watch (sign: '+' | '-', pid: number | undefined): void {
  if (pid !== undefined) tellWatchdog(`${sign}${pid}`)
}

/**
 * A directory of the lab's (keys, the farm secret, certificates) that the watchdog removes when
 * the lab dies without cleaning up. Only a `tlsfleet-*` directory right under the system's
 * temporary directory is accepted.
 */
export function removeIfLabDies (dir: string): void {
  tellWatchdog(`!${dir}`)
}

function tellWatchdog (line: string): void {
  if (watchdog === undefined) {
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'watchdog.js')
    watchdog = spawn(process.execPath, [script, String(process.pid)], { stdio: ['pipe', 'ignore', 'ignore'], detached: true })
    watchdog.on('error', () => {})
    watchdog.stdin?.on('error', () => {})
    watchdog.unref()
    ;(watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.()
  }
  watchdog.stdin?.write(`${line}\n`)
}

export function killGroup (child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try { process.kill(-child.pid, signal) } catch { try { child.kill(signal) } catch { /* gone */ } }
}

/** Spawn a child in its own process group, optionally pinned with `taskset -c CPUS`. */
export function spawnChild (command: string, args: string[], opts: { cpus?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess {
  const [cmd, argv] = opts.cpus !== undefined ? ['taskset', ['-c', opts.cpus, command, ...args]] : [command, args]
  const options: SpawnOptions = { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ...opts.env } }
  if (opts.cwd !== undefined) options.cwd = opts.cwd
  const child = spawn(cmd, argv, options)
  children.add(child)
  watch('+', child.pid)
  child.once('exit', () => { children.delete(child); watch('-', child.pid) })
  child.on('error', () => { /* reported by the caller through exit/ready checks */ })
  // The last lines of stderr, for the error that reports the child's early exit (child-waits.ts).
  const tail: string[] = []
  tails.set(child, tail)
  onLines(child.stderr, (line) => { tail.push(line); if (tail.length > STDERR_TAIL_LINES) tail.shift() })
  return child
}

// Enough for a Node.js stack trace with its message above it.
const STDERR_TAIL_LINES = 20
const tails = new WeakMap<ChildProcess, string[]>()

/** The last lines a child of spawnChild wrote to stderr ('' when none, or not one of spawnChild's). */
export function stderrTail (child: ChildProcess): string {
  return (tails.get(child) ?? []).join('\n')
}

export async function waitExit (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true
  return await new Promise((resolve) => {
    const timer = setTimeout(() => { child.removeListener('exit', onExit); resolve(false) }, ms)
    const onExit = (): void => { clearTimeout(timer); resolve(true) }
    child.once('exit', onExit)
  })
}

/** SIGTERM the group, wait, then SIGKILL it (bounded). */
export async function stopChild (child: ChildProcess, graceMs = 5000): Promise<void> {
  killGroup(child, 'SIGTERM')
  if (await waitExit(child, graceMs)) return
  killGroup(child, 'SIGKILL')
  await waitExit(child, 3000)
}

/** Path of an installed program, or undefined. */
export function which (program: string): string | undefined {
  const result = spawnSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' })
  const found = result.stdout.trim()
  return result.status === 0 && found !== '' ? found : undefined
}

/** The haproxy binary, or a LabError that says how to install it. */
export function requireHaproxy (): string {
  const found = which('haproxy')
  if (found !== undefined) return found
  throw new LabError([
    'haproxy is not installed (the lab runs the real one in front of the nodes). Install it:',
    '  Debian/Ubuntu: sudo apt-get install haproxy',
    '  Fedora/RHEL:   sudo dnf install haproxy',
    '  macOS:         brew install haproxy',
    'or run the same farm in containers: docker compose up (see docs/lab.md).'
  ].join('\n'))
}
