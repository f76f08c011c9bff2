import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { sumMetric } from '../../src/metrics/prometheus-text.js'
import { onLines } from '../../src/util/lines.js'

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
export const CLI = path.join(REPO_ROOT, 'bin', 'tlsfleet.js')

export interface RunningNode {
  process: ChildProcess
  logs: Array<Record<string, unknown>>
  stderr: () => string
  adminUrl: string
  /** Send a signal and wait for the process to exit (SIGKILL after `timeoutMs`). */
  stop: (signal?: NodeJS.Signals, timeoutMs?: number) => Promise<number | null>
  waitForLog: (predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number) => Promise<Record<string, unknown>>
  metric: (name: string, labels?: Record<string, string>) => Promise<number>
  /** For a failure message: whether the node is still running (or how it exited), its last 20 log lines and its stderr. */
  diagnosis: () => string
}

const running = new Set<ChildProcess>()
process.once('exit', () => { for (const child of running) child.kill('SIGKILL') })

/** Start `tlsfleet node` as a real process and wait until it logs that it is ready. */
export async function startNode (args: string[], opts: { adminPort: number; env?: NodeJS.ProcessEnv; timeoutMs?: number; wrap?: string[]; detached?: boolean }): Promise<RunningNode> {
  // `wrap` prefixes the command, e.g. ['ip', 'netns', 'exec', NS] for a test namespace.
  const [command, ...commandArgs] = [...(opts.wrap ?? []), process.execPath, CLI, 'node', '--log-format', 'json', '--admin-listen', `127.0.0.1:${opts.adminPort}`, ...args] as [string, ...string[]]
  const child = spawn(command, commandArgs, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
    // A process group of its own (the node leads it): for signals sent to the whole group.
    ...(opts.detached === true ? { detached: true } : {})
  })
  running.add(child)
  child.once('exit', () => running.delete(child))
  const logs: Array<Record<string, unknown>> = []
  const waiters = new Set<() => void>()
  let stderr = ''
  onLines(child.stdout, (line) => {
    try { logs.push(JSON.parse(line) as Record<string, unknown>) } catch { /* not JSON */ }
    for (const wake of waiters) wake()
  }, Infinity)
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })

  const waitForLog = async (predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 15_000): Promise<Record<string, unknown>> => {
    return await new Promise((resolve, reject) => {
      const check = (): void => {
        const found = logs.find(predicate)
        if (found !== undefined) { done(); resolve(found) }
      }
      const onExit = (): void => { done(); reject(new Error(`node exited before the expected log line; stderr:\n${stderr}`)) }
      const timer = setTimeout(() => { done(); reject(new Error(`timed out waiting for a log line; stderr:\n${stderr}\nlogs:\n${logs.map((l) => JSON.stringify(l)).join('\n')}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); waiters.delete(check); child.removeListener('exit', onExit) }
      waiters.add(check)
      child.once('exit', onExit)
      check()
    })
  }

  const adminUrl = `http://127.0.0.1:${opts.adminPort}`
  const node: RunningNode = {
    process: child,
    logs,
    stderr: () => stderr,
    diagnosis: () => {
      const state = child.exitCode !== null || child.signalCode !== null ? `exited (code ${String(child.exitCode)}, signal ${String(child.signalCode)})` : 'running'
      return `node ${state}; last logs:\n${logs.slice(-20).map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${stderr}`
    },
    adminUrl,
    waitForLog,
    stop: async (signal = 'SIGTERM', timeoutMs = 15_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      return await new Promise((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
        child.once('exit', (code) => { clearTimeout(timer); resolve(code) })
        child.kill(signal)
      })
    },
    metric: async (name, labels = {}) => await readMetric(adminUrl, name, labels)
  }
  try {
    await waitForLog((l) => l.msg === 'tlsfleet node ready', opts.timeoutMs ?? 20_000)
  } catch (err) {
    // A node that did not become ready must not outlive the attempt: its pipes would keep the
    // test process alive after the test failed.
    child.kill('SIGKILL')
    throw err
  }
  return node
}

/** Sum of the samples of `name` whose labels include `labels`, from the node's /metrics. */
export async function readMetric (adminUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sumMetric(await (await fetch(`${adminUrl}/metrics`)).text(), name, labels)
}

/** Poll until `check` returns true, or fail after `timeoutMs`. */
export async function eventually (check: () => Promise<boolean> | boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Child process ids of `pid` (a node's workers). */
export function childPids (pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)]).toString().trim().split('\n').filter(Boolean).map(Number)
  } catch { return [] }
}

/** Run `tlsfleet node` expecting it to stop by itself (a refused start): its exit code and stderr. */
export async function runNodeToExit (args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; uid?: number; gid?: number } = {}): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'node', '--log-format', 'json', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...opts.env },
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid, cwd: '/' } : {})
  })
  running.add(child)
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000)
    child.once('exit', (c) => { clearTimeout(timer); running.delete(child); resolve(c) })
  })
  return { code, stderr }
}
