import fs from 'node:fs'

/**
 * Files an operator names (--config, --cert, --cert-dir's *.pem, --client-ca, --crl, the
 * session store's PEM files, --sync-secret-file, --admin-token-file), read at start and at
 * SIGHUP, bounded in time and memory whatever the name turns out to be:
 *
 * - opened O_NONBLOCK, so a FIFO does not block open() until a writer comes (a start stuck in
 *   a system call never runs its SIGTERM handler);
 * - checked through the descriptor (fstat), so what is read is what was checked: anything but
 *   a regular file is refused (a FIFO, /dev/zero or /dev/urandom would never end);
 * - refused when larger than a cap chosen per use, before a byte is read, and read in chunks
 *   that stop at the cap, so a file that grows while it is read is refused too.
 *
 * O_NONBLOCK changes nothing for a regular file: reads still return what is there.
 */

/** A file refused by these rules; the message says why, without the file name (callers add it with their option). */
export class BoundedFileError extends Error {}

/**
 * The caps. Each is far above any real file of its kind, so it only stops a wrong name (a
 * disk image, a log, a device), never an operator's file:
 * - a YAML config: a few KiB in practice; 1 MiB.
 * - a certificate file (key, leaf and chain): a few KiB; OpenSSL clients refuse a chain over
 *   100 KiB anyway (certificates.ts); 1 MiB.
 * - a CA bundle (--client-ca, --session-store-ca): the whole Mozilla root store is about
 *   220 KiB in PEM; 16 MiB.
 * - a CRL: the one kind that is legitimately large, as a big CA's list of revoked serials
 *   reaches several MiB in DER (a third more in PEM); 64 MiB, still a bounded read.
 * - a secret or a token: a few dozen bytes (openssl rand -base64 48); 16 KiB leaves room for
 *   raw random bytes and comments after the token's first line.
 */
export const MAX_CONFIG_BYTES = 1024 * 1024
export const MAX_CERTIFICATE_BYTES = 1024 * 1024
export const MAX_CA_BUNDLE_BYTES = 16 * 1024 * 1024
export const MAX_CRL_BYTES = 64 * 1024 * 1024
export const MAX_SECRET_BYTES = 16 * 1024

/** "1 MiB", "16 KiB": how a cap reads in a message. */
export function sizeText (bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`
  return `${bytes} bytes`
}

/** What a file that is not a regular one is, for the refusal. */
function kindOf (stat: fs.Stats): string {
  if (stat.isFIFO()) return 'a FIFO'
  if (stat.isCharacterDevice()) return 'a character device'
  if (stat.isBlockDevice()) return 'a block device'
  if (stat.isDirectory()) return 'a directory'
  if (stat.isSocket()) return 'a socket'
  return 'not a file'
}

export interface ReadLimit {
  /** Refused when larger (in bytes). */
  maxBytes: number
  /** What the file should be, for the size refusal: "a YAML config file", "a farm secret". */
  what: string
  /**
   * More checks on the opened file, after it is known to be regular and before it is read
   * (a secret's mode); throw to refuse. Run on the descriptor's stat, not a second lookup.
   */
  check?: (stat: fs.Stats) => void
}

/**
 * Open `file` for reading without blocking on a FIFO. OS errors (ENOENT, EACCES) are thrown
 * as they are, for the caller to word as "cannot read". The caller closes the descriptor.
 */
export function openForBoundedRead (file: string): number {
  return fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
}

/** Chunk size of the reads: small enough to waste nothing on small files, few calls for large ones. */
const CHUNK_BYTES = 64 * 1024

/**
 * The bytes of an open file, refused (BoundedFileError) unless it is a regular file of at most
 * `limit.maxBytes`. Does not close `fd`.
 */
export function readBoundedDescriptor (fd: number, limit: ReadLimit): Buffer {
  const stat = fs.fstatSync(fd)
  if (!stat.isFile()) throw new BoundedFileError(`not a regular file (${kindOf(stat)})`)
  limit.check?.(stat)
  if (stat.size > limit.maxBytes) throw new BoundedFileError(tooLarge(stat.size, limit))
  // Sized from fstat, yet read until end of file: a file some /proc-like file system says is
  // empty still has its bytes, and one that grows meanwhile is caught at the cap.
  const chunks: Buffer[] = []
  let total = 0
  for (;;) {
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, limit.maxBytes + 1 - total))
    const got = fs.readSync(fd, chunk, 0, chunk.length, null)
    if (got === 0) break
    total += got
    if (total > limit.maxBytes) throw new BoundedFileError(`grew past ${sizeText(limit.maxBytes)} while it was read; ${limit.what} is never that large`)
    chunks.push(got === chunk.length ? chunk : chunk.subarray(0, got))
  }
  return Buffer.concat(chunks, total)
}

/** `file`'s bytes under readBoundedDescriptor's rules; OS errors thrown as they are. */
export function readBoundedFile (file: string, limit: ReadLimit): Buffer {
  const fd = openForBoundedRead(file)
  try {
    return readBoundedDescriptor(fd, limit)
  } finally {
    fs.closeSync(fd)
  }
}

/** "cannot read: ENOENT ..." for an OS error, the refusal itself for a BoundedFileError: the problem part of a caller's message. */
export function readProblem (err: unknown): string {
  return err instanceof BoundedFileError ? err.message : `cannot read: ${(err as Error).message}`
}

function tooLarge (size: number, limit: ReadLimit): string {
  return `${size} bytes, over the ${sizeText(limit.maxBytes)} allowed; ${limit.what} is never that large (is this the right file?)`
}
