import fs from 'node:fs'
import path from 'node:path'
import { TerminatorError } from '../errors.js'
import { loadFarmSecrets } from '../sync/farm-secret.js'
import { farmTicketSecrets } from '../tls/farm-ticket-secret.js'
import { TicketKeySchedule } from '../tls/ticket-keys.js'
import { expectedRing, keyFileText, type ExpectedRing } from './tls-keys.js'

export interface KeyFileOptions {
  /** Farm secret files (--sync-secret-file); the first one's keys are written. */
  secretFiles: string[]
  rotationSeconds: number
  out: string
  now?: number
}

/**
 * Write the local HAProxy's `tls-ticket-keys` file for its own start: the farm's ring of this
 * instant (previous, current, next), derived exactly as every node derives it, so an HAProxy
 * that starts or reloads from it already holds the farm's keys. Mode 0600, replaced
 * atomically (a reload never reads half a file). Returns the ring's epoch, not its keys.
 */
export function writeHaproxyKeyFile (opts: KeyFileOptions): { epoch: number; nextRotationMs: number } {
  const [secret] = farmTicketSecrets(loadFarmSecrets(opts.secretFiles))
  if (secret === undefined) throw new TerminatorError('haproxy-keys needs --sync-secret-file FILE (the farm secret the ticket keys derive from)')
  const now = opts.now ?? Date.now()
  const schedule = new TicketKeySchedule({ secret, rotationSeconds: opts.rotationSeconds, lifetimeSeconds: 0, now: () => now })
  const ring: ExpectedRing = expectedRing(schedule, now)
  try {
    replaceKeyFile(opts.out, keyFileText(ring))
  } catch (err) {
    throw new TerminatorError(`--out ${opts.out}: cannot write the key file: ${(err as Error).message}`)
  }
  return { epoch: ring.epoch, nextRotationMs: schedule.epochStartMs(ring.epoch + 1) }
}

/**
 * Replace a key file with `text`: written beside it, mode 0600, then renamed over it, so a
 * reload never reads half a file. Run as root, the new file keeps the owner of the one it
 * replaces (HAProxy's user may read it, e.g. after a master-worker re-exec). Throws fs errors.
 */
export function replaceKeyFile (file: string, text: string): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`)
  try {
    fs.writeFileSync(temp, text, { mode: 0o600 })
    fs.chmodSync(temp, 0o600)
    if (process.geteuid?.() === 0) {
      const previous = fs.statSync(file, { throwIfNoEntry: false })
      if (previous !== undefined) fs.chownSync(temp, previous.uid, previous.gid)
    }
    fs.renameSync(temp, file)
  } catch (err) {
    fs.rmSync(temp, { force: true })
    throw err
  }
}
