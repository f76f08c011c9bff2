import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { AdminTokenError } from '../errors.js'

export const MIN_TOKEN_LENGTH = 16

/**
 * Read a bearer token file (`--admin-token-file`, also read by the CLI's `--token-file`):
 * the first line, trimmed. With checkMode (the node, and the CLI) a file readable by group or
 * others is refused, since the token grants drain/maint of the node.
 */
export function readTokenFile (file: string, opts: { checkMode?: boolean } = {}): string {
  let stat: fs.Stats
  try {
    stat = fs.statSync(file)
  } catch (err) {
    throw new AdminTokenError(`token file "${file}": cannot read: ${(err as Error).message}`, { cause: err })
  }
  if (!stat.isFile()) throw new AdminTokenError(`token file "${file}": not a regular file`)
  if (opts.checkMode === true && (stat.mode & 0o077) !== 0) {
    throw new AdminTokenError(`token file "${file}": readable by group or others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`)
  }
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    // Statted but not readable (permissions): the same refusal, not an unexpected error.
    throw new AdminTokenError(`token file "${file}": cannot read: ${(err as Error).message}`, { cause: err })
  }
  const token = (text.split(/\r?\n/)[0] ?? '').trim()
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new AdminTokenError(`token file "${file}": the token has ${token.length} characters; at least ${MIN_TOKEN_LENGTH} are needed (try: openssl rand -hex 32)`)
  }
  if (/[^\x21-\x7e]/.test(token)) throw new AdminTokenError(`token file "${file}": the token must be printable ASCII without spaces`)
  return token
}

/** Compare an `Authorization` header with the expected token in constant time. */
export function bearerMatches (header: string | undefined, token: string): boolean {
  if (header === undefined) return false
  const match = /^Bearer[ \t]+(\S+)\s*$/i.exec(header)
  if (match === null) return false
  const given = crypto.createHash('sha256').update(match[1] ?? '').digest()
  const expected = crypto.createHash('sha256').update(token).digest()
  return crypto.timingSafeEqual(given, expected)
}

/** The admin API's credentials, as the node starts with them. */
export interface AdminCredentials {
  token: string
  /** The operator gave the token (--admin-token-file): every route but /health needs it. */
  explicit: boolean
  /** Where it is, for the start-up log and the CLI. */
  file: string
}

/**
 * The admin API token of a node, read at start. Without --admin-token-file the node makes one
 * in --state-dir/admin.token (mode 0600) on first start and reuses it: state changes then
 * need it, so only who can read that file (the node's user, root) can drain the node, while
 * reads on a loopback API stay open. `tlsfleet drain` finds it there by itself.
 */
export function loadAdminToken (file: string, stateDir: string): AdminCredentials {
  if (file === '') {
    const generated = path.join(stateDir, GENERATED_TOKEN_FILE)
    return { token: ensureGeneratedToken(generated), explicit: false, file: generated }
  }
  try {
    return { token: readTokenFile(file, { checkMode: true }), explicit: true, file }
  } catch (err) {
    if (err instanceof AdminTokenError) throw new AdminTokenError(`--admin-token-file: ${err.message}`)
    throw err
  }
}

/** The token file a node generates in its --state-dir when none is given. */
export const GENERATED_TOKEN_FILE = 'admin.token'

function ensureGeneratedToken (file: string): string {
  try {
    return readTokenFile(file, { checkMode: true })
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code !== 'ENOENT') throw new AdminTokenError(`generated admin token: ${(err as Error).message} (delete it to have a new one made)`)
  }
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  // Written aside and linked into place: nodes starting at once in one directory all end up
  // with the same complete file (link fails if another got there first).
  const temp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`
  fs.writeFileSync(temp, crypto.randomBytes(32).toString('hex') + '\n', { mode: 0o600 })
  try {
    fs.linkSync(temp, file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  } finally {
    fs.rmSync(temp, { force: true })
  }
  return readTokenFile(file, { checkMode: true })
}
