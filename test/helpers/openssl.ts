import { spawn } from 'node:child_process'
import fs from 'node:fs'

export interface SClientResult { output: string; reused: boolean; protocol?: string; subject?: string; code: number | null }

/**
 * One real `openssl s_client` connection: handshake, then stdin closes and it leaves.
 * `reused` is what s_client itself reports ("Reused, TLSv1.2, ...").
 */
export async function sClient (opts: {
  host?: string
  port: number
  servername?: string
  tls?: '1.2' | '1.3'
  sessOut?: string
  sessIn?: string
  extra?: string[]
  timeoutMs?: number
  /** Command prefix, e.g. ['ip', 'netns', 'exec', NS] to run the client in a test namespace. */
  wrap?: string[]
}): Promise<SClientResult> {
  const host = opts.host ?? '127.0.0.1'
  const target = host.includes(':') ? `[${host}]:${opts.port}` : `${host}:${opts.port}`
  const args = ['s_client', '-connect', target]
  if (opts.servername !== undefined) args.push('-servername', opts.servername)
  else args.push('-noservername')
  if (opts.tls !== undefined) args.push(opts.tls === '1.2' ? '-tls1_2' : '-tls1_3')
  if (opts.sessOut !== undefined) args.push('-sess_out', opts.sessOut)
  if (opts.sessIn !== undefined) args.push('-sess_in', opts.sessIn)
  args.push(...(opts.extra ?? []))
  if (opts.sessOut !== undefined) fs.rmSync(opts.sessOut, { force: true })
  return await new Promise((resolve, reject) => {
    const [command, ...prefixArgs] = [...(opts.wrap ?? []), 'openssl', ...args] as [string, ...string[]]
    const child = spawn(command, prefixArgs, { stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    let closing = false
    const closeInput = (): void => { if (!closing) { closing = true; child.stdin.end() } }
    child.stdout.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr.on('data', (d: Buffer) => { output += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`s_client timed out:\n${output}`)) }, opts.timeoutMs ?? 10_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      const line = /^(New|Reused), (TLSv[\d.]+)/m.exec(output)
      const subject = /^subject=(.*)$/m.exec(output)?.[1]
      const result: SClientResult = { output, reused: line?.[1] === 'Reused', code }
      if (line?.[2] !== undefined) result.protocol = line[2]
      if (subject !== undefined) result.subject = subject
      resolve(result)
    })
    // TLS 1.3 tickets arrive after the handshake: with -sess_out, close only once s_client has
    // written the session file (its stdout is block-buffered, so it cannot be watched), giving
    // up after 5 s and letting the caller's assertion say so. Otherwise close at once (TLS 1.2)
    // or after a moment (TLS 1.3).
    const sessOut = opts.sessOut
    if (opts.tls === '1.3' && sessOut !== undefined) {
      const started = Date.now()
      const poll = setInterval(() => {
        if (fs.existsSync(sessOut) || Date.now() - started > 5000) { clearInterval(poll); setTimeout(closeInput, 50) }
      }, 25)
    } else {
      setTimeout(closeInput, opts.tls === '1.3' ? 300 : 0)
    }
  })
}
