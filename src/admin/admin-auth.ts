import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { AdminTokenError } from '../errors.js'
import { prepareStateDir } from '../node/state-dir.js'
import { BoundedFileError, MAX_SECRET_BYTES, openForBoundedRead, readBoundedDescriptor } from '../util/bounded-file.js'
import { openPlainFile, trustedOwners, writeFileAtomically, type Owners } from '../util/safe-files.js'

export const MIN_TOKEN_LENGTH = 16

/**
 * Read a bearer token file (`--admin-token-file`, also read by the CLI's `--token-file`):
 * the first line, trimmed. With checkMode (the node, and the CLI) a file readable by group or
 * others is refused, since the token grants drain/maint of the node. The operator named this
 * file, so a link is followed (a Kubernetes secret volume is links); what is checked is the
 * descriptor it is read from.
 */
export function readTokenFile (file: string, opts: { checkMode?: boolean } = {}): string {
  let fd: number
  try {
    // O_NONBLOCK: a FIFO must not hang the open; it is refused as not a regular file.
    fd = openForBoundedRead(file)
  } catch (err) {
    throw cannotRead(file, err)
  }
  return readTokenDescriptor(file, fd, opts.checkMode === true)
}

/**
 * The token in a file a node generated (in --state-dir), never through a link nor from a file
 * with another name elsewhere (safe-files.ts); undefined when there is none. Mode as checkMode.
 */
export function readGeneratedToken (file: string, owners: Owners): string | undefined {
  let fd: number | undefined
  try {
    fd = openPlainFile(file, 'read', owners)
  } catch (err) {
    throw cannotRead(file, err)
  }
  return fd === undefined ? undefined : readTokenDescriptor(file, fd, true)
}

/** The token from an open token file (closed here), checked as readTokenFile says. */
export function readTokenDescriptor (file: string, fd: number, checkMode: boolean): string {
  let text: string
  try {
    // Bounded (bounded-file.ts): what is not a regular file is refused (its message says what
    // it is), and a huge file is refused before it is read, not read whole first.
    text = readBoundedDescriptor(fd, {
      maxBytes: MAX_SECRET_BYTES,
      what: 'a token file',
      check: (stat) => {
        if (checkMode && (stat.mode & 0o077) !== 0) {
          throw new AdminTokenError(`token file "${file}": readable by group or others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`)
        }
      }
    }).toString('utf8')
  } catch (err) {
    if (err instanceof AdminTokenError) throw err
    if (err instanceof BoundedFileError) throw new AdminTokenError(`token file "${file}": ${err.message}`)
    throw cannotRead(file, err)
  } finally {
    fs.closeSync(fd)
  }
  const token = (text.split(/\r?\n/)[0] ?? '').trim()
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new AdminTokenError(`token file "${file}": the token has ${token.length} characters; at least ${MIN_TOKEN_LENGTH} are needed (try: openssl rand -hex 32)`)
  }
  if (/[^\x21-\x7e]/.test(token)) throw new AdminTokenError(`token file "${file}": the token must be printable ASCII without spaces`)
  return token
}

function cannotRead (file: string, err: unknown): AdminTokenError {
  return new AdminTokenError(`token file "${file}": cannot read: ${(err as Error).message}`, { cause: err })
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
 * `stateOwners`: who may own --state-dir and the file (safe-files.ts trustedOwners, with --user's).
 */
export function loadAdminToken (file: string, stateDir: string, stateOwners: readonly number[] = trustedOwners()): AdminCredentials {
  if (file === '') {
    const generated = path.join(stateDir, GENERATED_TOKEN_FILE)
    return { token: ensureGeneratedToken(generated, stateOwners), explicit: false, file: generated }
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

function ensureGeneratedToken (file: string, owners: readonly number[]): string {
  prepareStateDir(path.dirname(file), owners)
  const kept = readGenerated(file, owners)
  if (kept !== undefined) return kept
  // Linked into place, not renamed: nodes starting at once in one directory all end up with
  // the first complete file.
  writeFileAtomically(file, crypto.randomBytes(32).toString('hex') + '\n', { mode: 0o600, replace: false })
  const token = readGenerated(file, owners)
  if (token === undefined) throw new AdminTokenError(`generated admin token "${file}": gone as soon as it was written`)
  return token
}

function readGenerated (file: string, owners: readonly number[]): string | undefined {
  try {
    return readGeneratedToken(file, owners)
  } catch (err) {
    throw new AdminTokenError(`generated admin token: ${(err as Error).message} (delete it to have a new one made)`, { cause: err })
  }
}
