import { TICKET_KEY_LENGTH } from '../tls/ticket-keys.js'
import { TerminatorError } from '../errors.js'
import type { HaproxyRuntimeApi } from './runtime-api.js'
import type { StatRow } from './stats.js'
import { keyLineBytes, type TlsKeyRef } from './tls-keys.js'

export interface LocalHaproxySetup {
  /** --terminator-socket, for messages. */
  socket: string
  /** --terminator-keys: the tls-ticket-keys file as the bind line names it. */
  keyFile: string
  /** --terminator-frontend: frontends that must exist (none = every frontend). */
  frontends: string[]
}

/** The FRONTEND rows of `show stat`. */
export function frontendRows (rows: StatRow[]): StatRow[] {
  return rows.filter((r) => r.svname === 'FRONTEND')
}

/** What a local HAProxy that passed the checks still holds besides the managed ring. */
export interface LocalHaproxyFindings {
  /** Ticket key rings of other `tls-ticket-keys` files: tickets from their binds resume nowhere else. */
  otherRings: TlsKeyRef[]
}

/**
 * The warning for rings besides --terminator-keys, or undefined when there are none. Binds with
 * no `tls-ticket-keys` at all do not show in `show tls-keys` (HAProxy 2.6): only the docs can
 * say those must not exist.
 */
export function otherRingsWarning (keyFile: string, others: TlsKeyRef[]): string | undefined {
  if (others.length === 0) return undefined
  const named = others.map((r) => `${r.id} (${r.file})`).join(', ')
  return `the local HAProxy holds ticket key rings tlsfleet does not manage: ${named}; tickets from those binds resume on no other node: every "bind ... ssl" line must use "tls-ticket-keys ${keyFile}"`
}

/**
 * Whether the local HAProxy is set up as a companioned node needs it, asked once per HAProxy
 * process: a socket at level admin (recent HAProxy versions allow ticket keys only there), a
 * bind line whose `tls-ticket-keys` is --terminator-keys, 48-byte keys (what the farm derives),
 * and the --terminator-frontend names. Throws a TerminatorError naming what to change; returns
 * what is not fatal (rings of other key files), for a warning.
 */
export async function checkLocalHaproxy (api: HaproxyRuntimeApi, setup: LocalHaproxySetup): Promise<LocalHaproxyFindings> {
  const { socket, keyFile } = setup
  const level = await api.cliLevel()
  if (level !== 'admin') {
    throw new TerminatorError(`--terminator-socket ${socket} answers at level "${level}": tlsfleet needs level admin to read and set ticket keys; declare it "stats socket ${socket} ... level admin" in the local HAProxy's global section`, `local haproxy socket is at level ${level}, needs admin`)
  }
  const refs = await api.showTlsKeyRefs()
  if (refs.length === 0) {
    throw new TerminatorError(`the local HAProxy (--terminator-socket ${socket}) has no bind line with tls-ticket-keys: add "tls-ticket-keys ${keyFile}" to its "bind ... ssl crt ..." line and write that file with: tlsfleet haproxy-keys --sync-secret-file FARM_SECRET --out ${keyFile}`, 'local haproxy has no bind line with tls-ticket-keys')
  }
  if (!refs.some((r) => r.file === keyFile)) {
    throw new TerminatorError(`--terminator-keys ${keyFile}: no bind line of the local HAProxy uses this tls-ticket-keys file; it uses ${refs.map((r) => r.file).sort().join(', ')} (give that path, exactly as the bind line writes it)`, 'no local haproxy bind line uses --terminator-keys')
  }
  const [first] = await api.showTlsKeys(keyFile)
  const size = first === undefined ? 0 : keyLineBytes(first)
  if (size !== TICKET_KEY_LENGTH) {
    throw new TerminatorError(`--terminator-keys ${keyFile} holds ${size}-byte keys; the farm's ticket keys are ${TICKET_KEY_LENGTH}-byte (AES-128) keys: rewrite the file with tlsfleet haproxy-keys --out ${keyFile} and reload HAProxy`, `--terminator-keys holds ${size}-byte keys, not 48`)
  }
  if (setup.frontends.length > 0) {
    const names = frontendRows(await api.showStat()).map((r) => r.pxname)
    const missing = setup.frontends.filter((f) => !names.includes(f))
    if (missing.length > 0) throw new TerminatorError(`--terminator-frontend ${missing.join(', ')}: the local HAProxy has no such frontend (it has ${names.join(', ') || 'none'})`, `local haproxy has no frontend ${missing.join(', ')}`)
  }
  return { otherRings: refs.filter((r) => r.file !== keyFile) }
}
