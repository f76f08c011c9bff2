import fs from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { GENERATED_TOKEN_FILE, readTokenDescriptor, readTokenFile } from '../admin/admin-auth.js'
import { isLoopbackHost } from '../config/host-port.js'
import { AdminClientError, AdminTokenError } from '../errors.js'
import { ANY_OWNER, openPlainFile, UnsafeFileError } from '../util/safe-files.js'
import { answerProblem, type AnswerShape } from './admin-answers.js'
import { listenerUids } from './loopback-listener.js'
import { numberArgument } from './number-argument.js'

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:8445'

export interface AdminClientOptions { admin?: string; tokenFile?: string; stateDir?: string; timeout?: string }

/** A URL's password as `***` (user:pw@ → user:***@), also in text that is not a valid URL. */
export function maskedPassword (text: string): string {
  return text.replace(/(\/\/[^/@]*?:)[^/@]*@/g, '$1***@')
}

/** Talks to one node's admin API (undici); every failure becomes an AdminClientError naming the node. */
export class AdminClient {
  readonly base: string
  private readonly token: string | undefined = undefined
  /** Where the token came from, when --admin is on this machine: who may be sent it (mayGetToken). */
  private readonly tokenFile?: { file: string; owner: number; host: string; port: number }
  private readonly timeoutMs: number

  constructor (opts: AdminClientOptions) {
    const written = opts.admin ?? process.env.TLSFLEET_ADMIN_URL ?? DEFAULT_ADMIN_URL
    // Refusals echo the URL to stderr and the shell's logs: its password is masked there, as
    // the node masks a refused --session-store's.
    const admin = maskedPassword(written)
    let url: URL
    try {
      url = new URL(/^[a-z]+:\/\//i.test(written) ? written : `http://${written}`)
    } catch {
      throw new AdminClientError(`--admin ${JSON.stringify(admin)} is not a URL (e.g. http://127.0.0.1:8445)`, 2)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new AdminClientError(`--admin ${admin}: only http:// and https:// URLs`, 2)
    // A password in the URL would be echoed in every message; a query or fragment would end up
    // in the middle of each route's path.
    if (url.username !== '' || url.password !== '') throw new AdminClientError('--admin: a URL with user:password@ is refused (the admin API takes a bearer token: --token-file)', 2)
    if (url.search !== '' || url.hash !== '') throw new AdminClientError(`--admin ${admin}: a URL with a query or fragment is refused (give scheme, host, port and an optional path prefix)`, 2)
    this.base = url.toString().replace(/\/+$/, '')
    // The generated token only goes to a node on this machine: never sent to another host.
    const host = url.hostname.replace(/^\[|\]$/g, '')
    const local = isLoopbackHost(host)
    const port = url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80
    const given = opts.tokenFile ?? process.env.TLSFLEET_ADMIN_TOKEN_FILE
    let found: { token: string; file: string; owner: number } | undefined
    if (given !== undefined) found = given !== '' ? readClientToken(given, '--token-file') : undefined
    else if (local) found = readGeneratedClientToken(opts.stateDir ?? process.env.TLSFLEET_STATE_DIR ?? '.tlsfleet')
    this.token = found?.token
    // On this machine, who listens can be asked (mayGetToken); elsewhere the operator chose the host.
    if (found !== undefined && local) this.tokenFile = { file: found.file, owner: found.owner, host, port }
    const seconds = numberArgument('--timeout', opts.timeout ?? '5', 0.1, 600, 'decimal')
    if (typeof seconds === 'string') throw new AdminClientError(`${seconds} (seconds)`, 2)
    this.timeoutMs = seconds * 1000
  }

  /** `shape`: what the answer must hold (admin-answers.ts), checked before it is returned as T. */
  async get<T> (path: string, shape: AnswerShape): Promise<T> {
    return await this.call<T>('GET', path, shape)
  }

  async put<T> (path: string, body: unknown, shape: AnswerShape): Promise<T> {
    return await this.call<T>('PUT', path, shape, body)
  }

  private async call<T> (method: 'GET' | 'PUT', path: string, shape: AnswerShape, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.token !== undefined && this.mayGetToken()) headers.authorization = `Bearer ${this.token}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Awaited<ReturnType<typeof request>>
    try {
      res = await request(`${this.base}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal: AbortSignal.timeout(this.timeoutMs + 1000)
      })
    } catch (err) {
      const e = err as Error & { code?: string; cause?: { code?: string; message?: string } }
      const why = e.code ?? e.cause?.code ?? e.name
      throw new AdminClientError(`cannot reach the node's admin API at ${this.base} (${why}: ${e.cause?.message ?? e.message}); is the node running, and is --admin right?`)
    }
    const text = await this.answerText(res.body, `${method} ${this.base}${path}`, res.statusCode)
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw new AdminClientError(`${method} ${this.base}${path}: HTTP ${res.statusCode} with a non-JSON answer: ${text.slice(0, 200)}`)
    }
    if (res.statusCode >= 400) {
      const message = (json as { message?: unknown }).message
      const hint = res.statusCode === 401 ? ' (give --token-file with the node\'s admin token, or --state-dir where the node generated it)' : ''
      throw new AdminClientError(`${method} ${this.base}${path}: HTTP ${res.statusCode}: ${typeof message === 'string' ? message : text.slice(0, 200)}${hint}`)
    }
    const problem = answerProblem(shape, json)
    if (problem !== undefined) {
      throw new AdminClientError(`${method} ${this.base}${path}: HTTP ${res.statusCode}, but not a tlsfleet node's answer (${problem}); is --admin a tlsfleet node's admin API?`)
    }
    return json as T
  }

  /**
   * Whether the listener at a loopback --admin may be sent the token: only a process of root or
   * of the token file's owner. A node binds its port as one or the other (as root, then --user;
   * as its own user, who alone can read a 0600 token file). Any local user may listen on the
   * admin port while the node is down, and would be handed the token that drains it. No
   * listener: no token (the connection is refused anyway). Where the socket tables cannot be
   * read (not Linux), it is sent as before.
   */
  private mayGetToken (): boolean {
    const source = this.tokenFile
    if (source === undefined) return true
    const uids = listenerUids(source.host, source.port)
    if (uids === undefined) return true
    const stranger = uids.find((uid) => uid !== 0 && uid !== source.owner)
    if (stranger !== undefined) {
      throw new AdminClientError(`${this.base}: refused to send the node's admin token (${source.file}): the process listening there runs as uid ${stranger}, neither root nor the token file's owner (uid ${source.owner}); is the node running, or has another user taken its port?`)
    }
    return uids.length > 0
  }

  /**
   * The answer's body, read within MAX_ANSWER_BYTES and the timeout: a wrong --admin (another
   * service that streams) must not fill the CLI's memory, and a node that stalls halfway
   * must fail with a message naming it, not an unexplained abort.
   */
  private async answerText (body: AsyncIterable<Buffer> & { destroy: (err?: Error) => unknown }, what: string, status: number): Promise<string> {
    const chunks: Buffer[] = []
    let size = 0
    try {
      for await (const chunk of body) {
        size += chunk.length
        if (size > MAX_ANSWER_BYTES) {
          body.destroy()
          throw new AdminClientError(`${what}: HTTP ${status} with an answer larger than ${MAX_ANSWER_BYTES / 1024 / 1024} MiB, not read further; is --admin a tlsfleet node's admin API?`)
        }
        chunks.push(chunk)
      }
    } catch (err) {
      if (err instanceof AdminClientError) throw err
      const e = err as Error & { code?: unknown }
      throw new AdminClientError(`${what}: HTTP ${status}, but the answer did not arrive whole (${typeof e.code === 'string' ? e.code : e.name}: ${e.message}; --timeout ${this.timeoutMs / 1000} s); is the node overloaded, or is --admin right?`)
    }
    return Buffer.concat(chunks).toString('utf8')
  }
}

/** The largest answer read from a node: far above any route's (thousands of certificates fit). */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024

/**
 * The token a node generated in its state dir, when it exists (a node on this machine, run from
 * here). Only a missing file means "none": one that cannot be looked at (EACCES) is refused by
 * name, not sent as no token at all (which the node answers with a bare 401).
 *
 * Run as root, this opens a file in a directory the node's --user owns: a link planted there
 * would send the first line of any file to --admin, so none is followed, nor a second name of
 * a file elsewhere (safe-files.ts). Any owner is accepted: the CLI cannot know the node's
 * --user, and a plain file that user made holds nothing it could not send itself.
 */
function readGeneratedClientToken (stateDir: string): { token: string; file: string; owner: number } | undefined {
  const file = path.join(stateDir, GENERATED_TOKEN_FILE)
  let fd: number | undefined
  try {
    fd = openPlainFile(file, 'read', ANY_OWNER)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined
    const hint = err instanceof UnsafeFileError ? 'refused; give --token-file' : 'run as the node\'s --user or root, or give --token-file'
    throw new AdminTokenError(`--state-dir "${stateDir}": cannot read the node's admin token "${file}": ${(err as Error).message} (${hint})`, { cause: err })
  }
  if (fd === undefined) return undefined
  try {
    const owner = fs.fstatSync(fd).uid
    return { token: readTokenDescriptor(file, fd, true), file, owner }
  } catch (err) {
    throw new AdminTokenError(`--state-dir "${stateDir}": ${(err as Error).message}`, { cause: err })
  }
}

/**
 * The token file is refused as the node refuses it (readable by others, short, unreadable):
 * the token drains the node, and the node's own generated file is 0600, so this costs nothing.
 */
function readClientToken (file: string, source: string): { token: string; file: string; owner: number } {
  try {
    const token = readTokenFile(file, { checkMode: true })
    // The owner of what was read (a link is followed, as readTokenFile follows it).
    return { token, file, owner: fs.statSync(file).uid }
  } catch (err) {
    throw new AdminTokenError(`${source}: ${(err as Error).message}`, { cause: err })
  }
}
