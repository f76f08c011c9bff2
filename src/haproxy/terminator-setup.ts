import { TICKET_KEY_LENGTH } from '../tls/ticket-keys.js'
import { TerminatorError } from '../errors.js'
import type { HaproxyRuntimeApi } from './runtime-api.js'
import type { StatRow } from './stats.js'
import { keyLineBytes } from './tls-keys.js'

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

/**
 * Whether the local HAProxy is set up as a companioned node needs it, asked once per HAProxy
 * process: a socket at level admin (recent HAProxy versions allow ticket keys only there), a
 * bind line whose `tls-ticket-keys` is --terminator-keys, 48-byte keys (what the farm derives),
 * and the --terminator-frontend names. Throws a TerminatorError naming what to change.
 */
export async function checkLocalHaproxy (api: HaproxyRuntimeApi, setup: LocalHaproxySetup): Promise<void> {
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
}
