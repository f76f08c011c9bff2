import crypto from 'node:crypto'
import fs from 'node:fs'
import { AdminTokenError } from '../errors.js'

export const MIN_TOKEN_LENGTH = 16

/**
 * Read a bearer token file (`--admin-token-file`, also read by the CLI's `--token-file`):
 * the first line, trimmed. A file readable by group or others is refused on the node, since
 * the token grants drain/maint of the node.
 */
export function readTokenFile (file: string, opts: { checkMode?: boolean } = {}): string {
  let stat: fs.Stats
  try {
    stat = fs.statSync(file)
  } catch (err) {
    throw new AdminTokenError(`token file "${file}": cannot read: ${(err as Error).message}`)
  }
  if (!stat.isFile()) throw new AdminTokenError(`token file "${file}": not a regular file`)
  if (opts.checkMode === true && (stat.mode & 0o077) !== 0) {
    throw new AdminTokenError(`token file "${file}": readable by group or others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`)
  }
  const token = (fs.readFileSync(file, 'utf8').split(/\r?\n/)[0] ?? '').trim()
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

/**
 * The admin API token of a node, read at start: undefined when --admin-token-file is not given
 * (then the API only listens on loopback, see config/node-checks.ts).
 */
export function loadAdminToken (file: string): string | undefined {
  if (file === '') return undefined
  try {
    return readTokenFile(file, { checkMode: true })
  } catch (err) {
    if (err instanceof AdminTokenError) throw new AdminTokenError(`--admin-token-file: ${err.message}`)
    throw err
  }
}
