import crypto from 'node:crypto'
import fs from 'node:fs'
import zlib from 'node:zlib'
import { FarmSecretError } from '../errors.js'
import { BoundedFileError, MAX_SECRET_BYTES, readBoundedFile, readProblem } from '../util/bounded-file.js'
import { MIN_SECRET_BYTES, type FarmKey } from './farm-keys.js'


/**
 * Reads the farm secrets (`--sync-secret-file`, the first one current). A secret readable by
 * group or others is refused, as is one shorter than 32 bytes. The file's bytes are the secret
 * (a trailing newline is dropped), so `openssl rand -base64 48 > farm.key` makes a good one.
 *
 * The key id every packet carries is derived from the secret itself, so all nodes agree on it
 * without configuration, and a node holding the old and the new secret during a change-over
 * can tell which one a packet was sealed with.
 *
 * A file after the first that is empty (0 bytes, or only a newline) holds no secret: a node can
 * keep a fixed pair of paths, the second one emptied between change-overs (SIGHUP reads them
 * again, farm-secret-reload.ts). Its mode is still checked; a missing file is still refused.
 * The first file always needs a secret: it seals what this node sends.
 */
export function loadFarmSecrets (files: string[]): FarmKey[] {
  const keys: FarmKey[] = []
  for (const [index, file] of files.entries()) {
    let secret: Buffer
    try {
      // Bounded (bounded-file.ts): a FIFO, a device or a huge file is refused at once; the mode
      // is checked on the descriptor the secret is then read from.
      secret = readBoundedFile(file, { maxBytes: MAX_SECRET_BYTES, what: 'a farm secret', check: checkSecretMode })
    } catch (err) {
      throw new FarmSecretError(file, readProblem(err))
    }
    while (secret.length > 0 && (secret[secret.length - 1] === 0x0a || secret[secret.length - 1] === 0x0d)) secret = secret.subarray(0, -1)
    if (secret.length === 0 && index > 0) continue // an emptied slot: no secret to accept
    if (secret.length < MIN_SECRET_BYTES) {
      throw new FarmSecretError(file, `${secret.length} bytes; a farm secret needs at least ${MIN_SECRET_BYTES} (try: openssl rand -base64 48)`)
    }
    const bits = estimatedEntropyBits(secret)
    if (bits < MIN_ESTIMATED_BITS) {
      throw new FarmSecretError(file, `looks guessable (about ${Math.floor(bits)} bits of entropy, at least ${MIN_ESTIMATED_BITS} are needed); make one with: openssl rand -base64 48 > ${file}`)
    }
    const id = farmKeyId(secret)
    const clash = keys.find((k) => k.id === id)
    if (clash !== undefined) {
      throw new FarmSecretError(file, clash.secret.equals(secret) ? 'the same secret is given twice' : 'its key id collides with the previous secret; generate another secret')
    }
    keys.push({ id, secret })
  }
  return keys
}

/** A secret readable by group or others is refused (loadFarmSecrets adds the option and the file). */
function checkSecretMode (stat: fs.Stats): void {
  if ((stat.mode & 0o077) !== 0) {
    throw new BoundedFileError(`readable by group or others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`)
  }
}

/**
 * Write a new random farm secret as an operator would make one (`openssl rand -base64 48`):
 * 48 random bytes in base64, mode 0600. For the lab and the tests.
 */
export function writeFarmSecretFile (file: string): string {
  fs.writeFileSync(file, crypto.randomBytes(48).toString('base64') + '\n', { mode: 0o600 })
  return file
}

/** One byte, derived from the secret, that names it on the wire. */
export function farmKeyId (secret: Buffer): number {
  return Buffer.from(crypto.hkdfSync('sha256', secret, 'tlsfleet farm secret', 'tlsfleet key id', 1))[0] as number
}

/**
 * What a farm secret must at least hold, estimated. The shortest honest secret, 32 random hex
 * characters (openssl rand -hex 16), estimates at 98 to 125; a typed phrase repeated, far less.
 */
const MIN_ESTIMATED_BITS = 80

/**
 * A cautious estimate of how many random bits a secret holds: the smaller of its length times
 * the Shannon entropy of its byte distribution (catches "aaaa...", "abab...", a short
 * alphabet) and its deflated size (catches repeated words or patterns). Not a proof of
 * randomness, a net for secrets typed by hand.
 */
export function estimatedEntropyBits (secret: Buffer): number {
  const counts = new Map<number, number>()
  for (const byte of secret) counts.set(byte, (counts.get(byte) ?? 0) + 1)
  let shannon = 0
  for (const count of counts.values()) {
    const p = count / secret.length
    shannon -= p * Math.log2(p)
  }
  // A deflate stream of incompressible input still carries ~5 bytes of framing.
  const deflatedBits = Math.max(0, zlib.deflateRawSync(secret, { level: 9 }).length - 5) * 8
  return Math.min(shannon * secret.length, deflatedBits)
}
