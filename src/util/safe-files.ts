import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

/**
 * Files in a directory another user can write to (--state-dir once handed to --user,
 * --ocsp-dir, a key file's directory), read and written by a process that may be root: a
 * name there can be a symbolic or hard link that user planted, to make root read, serve or
 * overwrite a file elsewhere. These open without following the last name, check what they
 * opened through the descriptor (no gap to swap it in), and create under a random name with
 * O_EXCL before renaming into place.
 */

/** A file or directory refused by these rules; callers wrap it in their own TlsfleetError. */
export class UnsafeFileError extends Error {}

/** Any owner: for a reader that cannot know who should own the file (the CLI and the node's --user). */
export const ANY_OWNER = 'any'
export type Owners = readonly number[] | typeof ANY_OWNER

/**
 * Who may own what a node keeps: root, this process's user, and --user's (the node hands its
 * files to that user, and a later start as root finds them so).
 */
export function trustedOwners (runAsUid?: number): number[] {
  const euid = process.geteuid?.()
  return [...new Set([0, ...(euid !== undefined ? [euid] : []), ...(runAsUid !== undefined ? [runAsUid] : [])])]
}

/** Octal mode for messages, e.g. "0644". */
export function modeText (stat: fs.Stats): string {
  return `0${(stat.mode & 0o7777).toString(8).padStart(3, '0')}`
}

/** Throws an UnsafeFileError unless `stat` is a regular file with one name, owned by one of `owners`. */
export function checkPlainFile (stat: fs.Stats, owners: Owners): void {
  if (!stat.isFile()) throw new UnsafeFileError('not a regular file')
  // A hard link to a file elsewhere (nlink > 1) is not one the node made.
  if (stat.nlink !== 1) throw new UnsafeFileError(`has ${stat.nlink} hard links (it is also a file elsewhere, not one the node made)`)
  if (owners !== ANY_OWNER && !owners.includes(stat.uid)) {
    throw new UnsafeFileError(`owned by uid ${stat.uid}, not by ${ownersText(owners)}`)
  }
}

/**
 * An existing file, opened for reading (or reading and writing) without following a final
 * symbolic link, and checked (checkPlainFile). Undefined when there is none; other errors
 * (EACCES, ENOTDIR) are thrown as they are. The caller closes the descriptor.
 */
export function openPlainFile (file: string, access: 'read' | 'write', owners: Owners): number | undefined {
  let fd: number
  try {
    // O_NONBLOCK: a FIFO planted under the name must not hang the open (fstat refuses it next).
    fd = fs.openSync(file, (access === 'write' ? fs.constants.O_RDWR : fs.constants.O_RDONLY) | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'ELOOP') throw new UnsafeFileError('a symbolic link (not followed: the node makes this file itself)', { cause: err })
    throw err
  }
  try {
    checkPlainFile(fs.fstatSync(fd), owners)
  } catch (err) {
    fs.closeSync(fd)
    throw err
  }
  return fd
}

/** The text of an existing file under openPlainFile's rules; undefined when there is none. */
export function readPlainFile (file: string, owners: Owners): string | undefined {
  const fd = openPlainFile(file, 'read', owners)
  if (fd === undefined) return undefined
  try {
    return fs.readFileSync(fd, 'utf8')
  } finally {
    fs.closeSync(fd)
  }
}

export interface WriteOptions {
  mode: number
  /** false: keep a file already there (returns false) instead of replacing it. */
  replace?: boolean
  /** Give the new file this owner (root writing a file another user reads). */
  owner?: { uid: number; gid: number }
}

/** The name writeFileAtomically writes `file` under first: `.<name>.<16 hex digits>.tmp` beside it. */
export function atomicTempName (file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${crypto.randomBytes(8).toString('hex')}.tmp`)
}

/**
 * Write `data` to `file` whole: into a new file under a random name beside it (O_CREAT|O_EXCL|
 * O_NOFOLLOW: never a file someone put there first), then renamed over `file` (which replaces
 * a link there, never what it points to) or, without `replace`, linked to it. A reader never
 * sees half a file. Returns false when `replace` is false and `file` exists.
 */
export function writeFileAtomically (file: string, data: string | Buffer, opts: WriteOptions): boolean {
  const temp = atomicTempName(file)
  const fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, opts.mode)
  try {
    try {
      fs.writeFileSync(fd, data)
      fs.fchmodSync(fd, opts.mode) // the umask may have taken bits the caller wants (0644 for OCSP)
      if (opts.owner !== undefined) fs.fchownSync(fd, opts.owner.uid, opts.owner.gid)
    } finally {
      fs.closeSync(fd)
    }
    if (opts.replace === false) {
      try {
        fs.linkSync(temp, file)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
        throw err
      }
    } else {
      fs.renameSync(temp, file)
    }
    return true
  } finally {
    fs.rmSync(temp, { force: true })
  }
}

/**
 * Why a directory a node keeps files in is not safe, or undefined: it must be a directory owned
 * by one of `owners` and not writable by group or others (who could otherwise plant links).
 */
export function privateDirProblem (stat: fs.Stats, owners: readonly number[]): string | undefined {
  if (!stat.isDirectory()) return 'not a directory'
  if (!owners.includes(stat.uid)) return `owned by uid ${stat.uid} (mode ${modeText(stat)}), not by ${ownersText(owners)}`
  if ((stat.mode & 0o022) !== 0) return `writable by group or others (mode ${modeText(stat)}, owner uid ${stat.uid})`
  return undefined
}

function ownersText (owners: readonly number[]): string {
  const names = owners.map((uid) => uid === 0 ? 'root' : `uid ${uid}`)
  return names.length === 1 ? names[0] as string : `${names.slice(0, -1).join(', ')} or ${names.at(-1) as string}`
}
