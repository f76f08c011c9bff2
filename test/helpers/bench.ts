import { spawn, type ChildProcess } from 'node:child_process'
import { CLI } from './node-process.js'

/** `tlsfleet bench ARGS` as a real process, killed after `timeoutMs`. */
export async function runBench (args: string[], timeoutMs: number, opts: { env?: NodeJS.ProcessEnv; onStderr?: (text: string, child: ChildProcess) => void } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return await new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'bench', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); opts.onStderr?.(stderr, child) })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('exit', (c) => { clearTimeout(timer); resolve({ code: c, stdout, stderr }) })
  })
}
