import net from 'node:net'
import { parseHostPort } from '../config/host-port.js'
import { HaproxyRuntimeError } from '../errors.js'
import { parseShowInfo, type HaproxyInfo } from './show-info.js'
import { parseServersState, parseShowStat, type ServerStateRow, type StatRow } from './stats.js'
import { parseTlsKeyRefs, parseTlsKeys, type TlsKeyRef } from './tls-keys.js'

/** Socket errors that mean HAProxy went away (stopped, restarting): refused, reset, or its socket file gone. */
const LOST_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ENOENT'])

/**
 * Whether a command failed because the runtime socket went away (HAProxy stopped or is
 * restarting: refused, reset, vanished, or closed before a whole reply) rather than because
 * HAProxy answered something unusable. Which one a stopping HAProxy gives depends on where in
 * a command it stops.
 */
export function connectionLost (err: unknown): boolean {
  if (err instanceof HaproxyRuntimeError) return err.lost
  return err instanceof RuntimeSocketError && err.code !== undefined && LOST_CODES.has(err.code)
}

/**
 * The Runtime API socket failed (connect, read, write) or gave no whole reply in time. The
 * errno is kept on `code`, not as a `cause`: the message already says it, and the log
 * serialiser would append the cause's message again.
 */
export class RuntimeSocketError extends Error {
  constructor (message: string, readonly code: string | undefined, readonly timeoutMs?: number) {
    super(message)
    this.name = 'RuntimeSocketError'
  }

  /** Node's socket error, said once: its message repeats the address the target names. */
  static from (target: string, err: NodeJS.ErrnoException): RuntimeSocketError {
    const what = err.syscall !== undefined && err.code !== undefined ? `${err.syscall} ${err.code}` : err.message
    return new RuntimeSocketError(`haproxy runtime API ${target}: ${what}`, err.code)
  }
}

export type ServerAdminCommandState = 'ready' | 'drain' | 'maint'

type Target = { path: string } | { host: string; port: number }

/**
 * Most bytes read for one reply. The commands sent here answer a few KB to a few MB (`show
 * stat` of a large config); a peer that streams more (a wrong --haproxy-socket port, a broken
 * proxy in between) is cut at once instead of growing the primary's memory until the deadline.
 */
const MAX_REPLY_BYTES = 64 * 1024 * 1024

/** HAProxy object names (proxies, servers, tables): letters, digits, `-_.:` (see `invalid_char`). */
const NAME = /^[A-Za-z0-9_.:-]+$/

/**
 * Replies that are errors whatever the command was. Checked on every reply: a `show ...`
 * helper would otherwise try to parse "Permission denied" as data.
 */
const ALWAYS_ERROR = [/^Unknown command/, /^Permission denied/]

/**
 * HAProxy's master CLI (`-S`, e.g. Debian's /run/haproxy-master.sock) knows none of the
 * commands sent here: it suggests its own, which a worker's CLI never lists (2.6.12).
 */
function fromMasterCli (output: string): boolean {
  return output.startsWith('Unknown command') && /^ {2}(?:show proc|@master|@<relative pid>) /m.test(output)
}

function parseTarget (target: string): Target {
  if (target.startsWith('unix@')) return { path: target.slice(5) }
  if (target.includes('/')) return { path: target }
  const stripped = target.replace(/^ipv[46]@/, '')
  const parsed = parseHostPort(stripped)
  if (typeof parsed === 'string') throw new Error(`haproxy runtime API target "${target}": ${parsed} (or give a socket path)`)
  return parsed
}

/** A tls-ticket-keys file as the CLI names it: one word (the CLI splits arguments on spaces). */
function checkKeyFile (file: string): void {
  if (file === '' || /\s/.test(file)) throw new Error(`invalid tls-ticket-keys file ${JSON.stringify(file)}: expected a path without spaces`)
}

function checkName (what: string, name: string): void {
  if (!NAME.test(name)) throw new Error(`invalid haproxy ${what} name ${JSON.stringify(name)}: use letters, digits and -_.:`)
}

/**
 * Client for the HAProxy Runtime API (stats socket), in its default non-interactive mode:
 * one connection per command, write `cmd\n`, read until HAProxy closes. Every reply ends with
 * an empty line, which is stripped, so a silent success is `''`.
 */
export class HaproxyRuntimeApi {
  readonly target: string
  private readonly endpoint: Target
  private readonly timeoutMs: number

  private readonly maxReplyBytes: number

  constructor (target: string, opts: { timeoutMs?: number; maxReplyBytes?: number } = {}) {
    this.target = target
    this.endpoint = parseTarget(target)
    this.timeoutMs = opts.timeoutMs ?? 5000
    this.maxReplyBytes = opts.maxReplyBytes ?? MAX_REPLY_BYTES
  }

  /** Send one command and return HAProxy's reply without the terminating empty line. */
  async command (cmd: string): Promise<string> {
    // `;` chains commands and a newline starts another one: either would let a value smuggle
    // in a second command. `prompt` would switch to interactive mode and never close.
    if (/[\r\n;\0]/.test(cmd)) throw new Error(`refusing haproxy command containing a newline, ';' or NUL: ${JSON.stringify(cmd)}`)
    const trimmed = cmd.trim()
    if (trimmed === '') throw new Error('refusing an empty haproxy command')
    if (/^prompt\b/.test(trimmed)) throw new Error('refusing "prompt": this client only speaks the non-interactive mode')
    const raw = await this.exchange(trimmed)
    if (raw === '') throw new HaproxyRuntimeError(trimmed, raw, `haproxy closed the connection without replying to "${trimmed}"`, true)
    // HAProxy ends every reply with an empty line (a silent success is that line alone): a reply
    // cut at a line boundary would otherwise pass for a whole one, e.g. a ring of two keys.
    // The part received is not kept: it may hold key material (`show tls-keys FILE`).
    if (raw !== '\n' && !raw.endsWith('\n\n')) throw new HaproxyRuntimeError(trimmed, '', `incomplete reply from haproxy to "${trimmed}" (closed after ${Buffer.byteLength(raw)} bytes, before the empty line that ends every reply)`, true)
    const output = raw === '\n' ? '' : raw.slice(0, -1)
    if (fromMasterCli(output)) {
      throw new HaproxyRuntimeError(trimmed, output, `haproxy rejected "${trimmed}": ${this.target} is HAProxy's master CLI (-S), which runs no such command itself; give the stats socket of the worker instead (a "stats socket PATH level admin" line of the global section)`)
    }
    if (ALWAYS_ERROR.some((re) => re.test(output))) throw new HaproxyRuntimeError(trimmed, output)
    return output
  }

  /** Run a command that prints nothing on success; any text is HAProxy's error message. */
  async silentCommand (cmd: string): Promise<void> {
    const output = await this.command(cmd)
    if (output.trim() !== '') throw new HaproxyRuntimeError(cmd, output)
  }

  /** `set server B/S state ready|drain|maint`. */
  async setServerState (backend: string, server: string, state: ServerAdminCommandState): Promise<void> {
    checkName('backend', backend)
    checkName('server', server)
    if (state !== 'ready' && state !== 'drain' && state !== 'maint') throw new Error(`invalid server state ${JSON.stringify(state)}: expected ready, drain or maint`)
    await this.silentCommand(`set server ${backend}/${server} state ${state}`)
  }

  /** `show stat`, parsed. */
  async showStat (): Promise<StatRow[]> {
    const output = await this.command('show stat')
    if (!output.startsWith('# ')) throw new HaproxyRuntimeError('show stat', output)
    return parseShowStat(output)
  }

  /** `show servers state [B]`, parsed. An unknown backend is an error ("Can't find backend."). */
  async showServersState (backend?: string): Promise<ServerStateRow[]> {
    if (backend !== undefined) checkName('backend', backend)
    const cmd = backend === undefined ? 'show servers state' : `show servers state ${backend}`
    const output = await this.command(cmd)
    if (!output.startsWith('1\n')) throw new HaproxyRuntimeError(cmd, output)
    return parseServersState(output)
  }

  /**
   * `clear table T data.server_id eq N`: forget every persistence entry pointing at server
   * id N. Works on binary (SSL session ID) tables, unlike `clear table T key K` before 2.9.
   */
  async clearTableByServerId (table: string, serverId: number): Promise<void> {
    checkName('table', table)
    if (!Number.isSafeInteger(serverId) || serverId < 0) throw new Error(`invalid server id ${serverId}: expected a non-negative integer`)
    await this.silentCommand(`clear table ${table} data.server_id eq ${serverId}`)
  }

  /** `show table T`, raw text starting with `# table: T, type: ...`. */
  async showTable (table: string): Promise<string> {
    checkName('table', table)
    const cmd = `show table ${table}`
    const output = await this.command(cmd)
    if (!output.startsWith('# table:')) throw new HaproxyRuntimeError(cmd, output)
    return output
  }

  /** `show info`, parsed. */
  async showInfo (): Promise<HaproxyInfo> {
    const output = await this.command('show info')
    if (!output.startsWith('Name:')) throw new HaproxyRuntimeError('show info', output)
    return parseShowInfo(output)
  }

  /** `show cli level`: `admin`, `operator` or `user`, the level this socket grants. */
  async cliLevel (): Promise<string> {
    return (await this.command('show cli level')).trim()
  }

  /** `show tls-keys`: the ticket key rings HAProxy holds, by id and file. */
  async showTlsKeyRefs (): Promise<TlsKeyRef[]> {
    const output = await this.command('show tls-keys')
    if (!output.startsWith('# id')) throw new HaproxyRuntimeError('show tls-keys', output)
    return parseTlsKeyRefs(output)
  }

  /**
   * `show tls-keys FILE`: the ring's keys (base64), oldest first. The answer holds key material,
   * so no error raised here quotes it.
   */
  async showTlsKeys (file: string): Promise<string[]> {
    checkKeyFile(file)
    const cmd = `show tls-keys ${file}`
    const output = await this.command(cmd)
    if (!output.startsWith('# id')) throw new HaproxyRuntimeError(cmd, output.split('\n')[0] ?? '')
    return parseTlsKeys(output)
  }

  /**
   * `set ssl tls-key FILE KEY`: push the next ticket key into the ring. Whatever goes wrong,
   * the error names the file and HAProxy's answer but never the key.
   */
  async setTlsKey (file: string, key: string): Promise<void> {
    checkKeyFile(file)
    if (!/^[A-Za-z0-9+/=]+$/.test(key)) throw new Error('set ssl tls-key: the key is not base64')
    const shown = `set ssl tls-key ${file} <key>`
    let output: string
    try {
      output = await this.command(`set ssl tls-key ${file} ${key}`)
    } catch (err) {
      const answer = err instanceof HaproxyRuntimeError ? err.output : ''
      const why = err instanceof HaproxyRuntimeError && !err.lost ? answer.trim() : (err as Error).message.split(key).join('<key>')
      // Still "lost" when it was: HAProxy going away mid-push is unreachable, not a refusal.
      throw new HaproxyRuntimeError(shown, answer, `haproxy did not take "${shown}": ${why === '' ? '(empty reply)' : why}`, err instanceof HaproxyRuntimeError && err.lost)
    }
    if (!output.includes('TLS ticket key updated')) throw new HaproxyRuntimeError(shown, output)
  }

  private async exchange (cmd: string): Promise<string> {
    return await new Promise((resolve, reject) => {
      const socket = 'path' in this.endpoint
        ? net.createConnection({ path: this.endpoint.path })
        : net.createConnection({ host: this.endpoint.host, port: this.endpoint.port })
      const chunks: Buffer[] = []
      let received = 0
      let settled = false
      const finish = (error: Error | undefined): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        socket.destroy()
        if (error !== undefined) reject(error)
        else resolve(Buffer.concat(chunks).toString('utf8'))
      }
      // One deadline for connect + reply: a wedged HAProxy must not hang the caller.
      const timer = setTimeout(() => {
        finish(new RuntimeSocketError(`haproxy runtime API ${this.target}: no complete reply to "${cmd}" within ${this.timeoutMs} ms`, undefined, this.timeoutMs))
      }, this.timeoutMs)
      // Our side is closed after the command, as `echo CMD | socat stdio SOCKET` does: a worker's
      // socket closes after its reply anyway, and HAProxy's master CLI (-S) only then.
      socket.on('connect', () => socket.end(`${cmd}\n`))
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length
        if (received > this.maxReplyBytes) {
          chunks.length = 0
          finish(new RuntimeSocketError(`haproxy runtime API ${this.target}: the reply to "${cmd}" exceeds ${this.maxReplyBytes} bytes: is this HAProxy's stats socket?`, undefined))
          return
        }
        chunks.push(chunk)
      })
      socket.on('end', () => finish(undefined))
      socket.on('close', () => finish(undefined))
      socket.on('error', (err) => finish(RuntimeSocketError.from(this.target, err)))
    })
  }
}
