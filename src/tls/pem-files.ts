import crypto from 'node:crypto'
import fs from 'node:fs'
import { ConfigError } from '../errors.js'
import { MAX_CA_BUNDLE_BYTES, MAX_CERTIFICATE_BYTES, MAX_CRL_BYTES, readBoundedFile, readProblem, type ReadLimit } from '../util/bounded-file.js'
import type { Logger } from '../util/logger.js'
import { modeText } from '../util/safe-files.js'

/** PEM CERTIFICATE blocks in a text (global: with `match`, all of them). */
export const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/**
 * A PEM file an option names, as text; a refusal names the option and the file. Bounded
 * (bounded-file.ts): a FIFO or a device is refused at once, a file over `limit` unread.
 */
export function readPemFile (option: string, file: string, limit: ReadLimit = PEM_LIMIT): string {
  try {
    return readBoundedFile(file, limit).toString('utf8')
  } catch (err) {
    throw new ConfigError([`${option} "${file}": ${readProblem(err)}`])
  }
}

/** A key with its certificate and chain (--session-store-cert). */
const PEM_LIMIT: ReadLimit = { maxBytes: MAX_CERTIFICATE_BYTES, what: 'a PEM key and certificate file' }
/** --client-ca, --session-store-ca: a bundle may hold a whole root store. */
const CA_BUNDLE_LIMIT: ReadLimit = { maxBytes: MAX_CA_BUNDLE_BYTES, what: 'a CA bundle' }
/** --crl: a big CA's revocation list is the largest file of all. */
export const CRL_LIMIT: ReadLimit = { maxBytes: MAX_CRL_BYTES, what: 'a CRL file' }

/** Certificate `index` (0-based) of a file, parsed; a refusal names the option, the file and its place. */
export function parseCertificateBlock (option: string, file: string, block: string, index: number): crypto.X509Certificate {
  try {
    return new crypto.X509Certificate(block)
  } catch (err) {
    throw new ConfigError([`${option} "${file}": certificate ${index + 1} is unreadable: ${(err as Error).message}`])
  }
}

/** A CA file (--client-ca, --session-store-ca): its certificates as PEM text, each checked. */
export function readCaCertificates (option: string, file: string): string {
  const blocks = readPemFile(option, file, CA_BUNDLE_LIMIT).match(CERTIFICATE_BLOCK) ?? []
  if (blocks.length === 0) throw new ConfigError([`${option} "${file}": no PEM certificate in it (expected -----BEGIN CERTIFICATE----- blocks)`])
  blocks.forEach((block, i) => parseCertificateBlock(option, file, block, i))
  return blocks.join('\n') + '\n'
}

/**
 * A file holding a private key that group or others may open: warned at every load (start,
 * SIGHUP), not refused, as hitch and HAProxy load such files too and certificate files are
 * often another tool's to manage (certbot's archive/ kept keys 0644 behind 0700 directories).
 * The mode is the file's a link points to. `option`: how the file was given.
 */
export function warnLooseKeyFile (option: string, file: string, log: Logger): void {
  let stat: fs.Stats
  try {
    stat = fs.statSync(file)
  } catch {
    return // read a moment ago: gone since, the next load says so
  }
  if ((stat.mode & 0o077) === 0) return
  log.warn({ option, file, mode: modeText(stat), uid: stat.uid }, 'private key file open to group or others: anyone who can read it can impersonate this server; run chmod 600 on it (or 640 with a group only the node\'s user is in), and keep its directories closed to others')
}
