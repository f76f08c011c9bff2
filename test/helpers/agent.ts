import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import type { HaproxyRuntimeApi } from '../../src/haproxy/runtime-api.js'
import type { StatRow } from '../../src/haproxy/stats.js'
import { CLI } from './node-process.js'

/** What one connection to an agent port met: the bytes read, the error it got, and whether it closed in time. */
export interface AgentExchange { text: string; connected: boolean; error?: string; closed: boolean }

/** Connect to `port`, write `send`, read until the peer closes or `timeoutMs` passes. Never rejects. */
export async function agentExchange (port: number, send?: string | Buffer, timeoutMs = 3000): Promise<AgentExchange> {
  return await new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    const seen: AgentExchange = { text: '', connected: false, closed: false }
    // A copy on timeout: destroy() still emits close, which must not mark the answer closed.
    const timer = setTimeout(() => { socket.destroy(); resolve({ ...seen }) }, timeoutMs)
    socket.on('connect', () => {
      seen.connected = true
      if (send !== undefined) socket.write(send)
    })
    socket.on('data', (d: Buffer) => { seen.text += d.toString('latin1') })
    // A reset after the reply is fine: close follows, and the error is kept for diagnostics.
    socket.on('error', (e: Error & { code?: string }) => { seen.error = e.code ?? e.message })
    socket.on('close', () => { clearTimeout(timer); seen.closed = true; resolve(seen) })
  })
}

/** What the agent on `port` answers (to `send`, if given): everything it writes before it closes. */
export async function agentSays (port: number, send?: string | Buffer, timeoutMs = 3000): Promise<string> {
  const seen = await agentExchange(port, send, timeoutMs)
  if (!seen.closed) throw new Error(`agent on ${port} did not close within ${timeoutMs} ms; got ${JSON.stringify(seen.text)}`)
  return seen.text
}

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** Run the real `tlsfleet` CLI (bin/tlsfleet.js) with this Node, bounded. */
export async function runCli (args: string[], timeoutMs = 15_000, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return await new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: timeoutMs, encoding: 'utf8', env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null
      resolve({ code, stdout, stderr })
    })
  })
}

/** This node's row in HAProxy's `show stat`. */
export async function serverRow (api: HaproxyRuntimeApi, backend: string, server: string): Promise<StatRow> {
  const row = (await api.showStat()).find((r) => r.pxname === backend && r.svname === server)
  if (row === undefined) throw new Error(`no ${backend}/${server} in show stat`)
  return row
}

/** A token file as an operator makes it: random, mode 0600. */
export function writeToken (dir: string, name = 'admin.token'): { file: string; token: string } {
  const token = crypto.randomBytes(24).toString('hex')
  const file = path.join(dir, name)
  fs.writeFileSync(file, token + '\n', { mode: 0o600 })
  return { file, token }
}

/** Bind `port` on loopback with a plain TCP server (retried briefly, bounded). */
export async function holdPort (port: number, timeoutMs = 3000): Promise<net.Server> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const server = net.createServer((s) => s.destroy())
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false))
      server.listen({ host: '127.0.0.1', port }, () => resolve(true))
    })
    if (ok) return server
    if (Date.now() > deadline) throw new Error(`could not bind 127.0.0.1:${port} within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
