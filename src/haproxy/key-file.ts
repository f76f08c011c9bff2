import fs from 'node:fs'
import { TerminatorError } from '../errors.js'
import { writeFileAtomically } from '../util/safe-files.js'
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
 * reload never reads half a file (under a random name created with O_EXCL: a link planted in
 * the directory cannot redirect root's write). Run as root, the new file keeps the owner and
 * group of the one it replaces (HAProxy's user may read it, e.g. after a master-worker re-exec),
 * and its group-read bit when it had one: an HAProxy started as its own user (the official
 * container image) may read the file through its group only, and a 0600 file made its next
 * start or reload fail ("unable to load ssl tickets keys file"). Never readable by others.
 * Throws fs errors.
 */
export function replaceKeyFile (file: string, text: string): void {
  // lstat: the owner of a link left at the name says nothing about who should read the keys.
  const previous = fs.lstatSync(file, { throwIfNoEntry: false })
  const kept = previous?.isFile() === true ? previous : undefined
  // The group is only kept where it can be given: as root, or when it is this process's own.
  const root = process.geteuid?.() === 0
  const sameGroup = kept !== undefined && (root || kept.gid === process.getegid?.())
  const mode = 0o600 | (sameGroup ? kept.mode & 0o040 : 0)
  writeFileAtomically(file, text, { mode, ...(root && kept !== undefined ? { owner: { uid: kept.uid, gid: kept.gid } } : {}) })
}
