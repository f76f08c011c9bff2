import fs from 'node:fs'
import path from 'node:path'

/**
 * The only names the node writes in --ocsp-dir: `<SHA-256 of the leaf, hex>.der`
 * (ocsp-stapler.ts). Anything else there is someone else's and never touched.
 */
const RESPONSE_FILE = /^([0-9a-f]{64})\.der$/

/**
 * writeFileAtomically's temporary name for a response file (safe-files.ts atomicTempName):
 * `.<key>.der.<16 hex>.tmp`. It lives for one synchronous write; one that stays was left by a
 * node that died mid-write (a crash, SIGKILL, a full disk) and nobody renames it any more.
 */
const TEMP_FILE = /^\.[0-9a-f]{64}\.der\.[0-9a-f]{16}\.tmp$/

/**
 * How old a temporary response file must be to be removed: a write takes milliseconds, so one
 * this old is no writer's, another node's sharing the directory included, even on a slow disk.
 */
export const STALE_TEMP_MS = 10 * 60_000

/** The file a certificate's response is kept in (`key`: certificateKey of its leaf). */
export function responseFile (dir: string, key: string): string {
  return path.join(dir, `${key}.der`)
}

/**
 * Remove, from --ocsp-dir, the responses the node wrote for certificates it no longer serves
 * (`served`: the keys of those it does), which would otherwise pile up at every renewal. Only
 * regular files of the node's own naming are removed, and only once none has been written
 * for `idleMs`: a node sharing the directory rewrites the responses of the certificates it
 * serves at every refresh, so a file written lately may be another node's. Never throws: a
 * file that cannot be removed stays for the next sweep. Returns the names removed.
 */
export function removeStaleResponses (dir: string, served: ReadonlySet<string>, idleMs: number, now = Date.now()): string[] {
  return removeUntouched(dir, (name) => {
    const key = RESPONSE_FILE.exec(name)?.[1]
    return key !== undefined && !served.has(key)
  }, idleMs, now)
}

/**
 * Remove the temporary files of response writes that never finished (TEMP_FILE) from --ocsp-dir:
 * regular files of that naming only, untouched for `olderThanMs`. Never throws. Returns the
 * names removed.
 */
export function removeStaleTempFiles (dir: string, olderThanMs = STALE_TEMP_MS, now = Date.now()): string[] {
  return removeUntouched(dir, (name) => TEMP_FILE.test(name), olderThanMs, now)
}

/**
 * The regular files of `dir` whose name `ours` takes, removed once untouched for `idleMs`. A link
 * or a directory under such a name is not a file the node wrote (it writes by rename); a file
 * that cannot be removed (gone already, renamed by its writer, not ours) stays for the next
 * sweep. Never throws. Returns the names removed.
 */
function removeUntouched (dir: string, ours: (name: string) => boolean, idleMs: number, now: number): string[] {
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return []
  }
  const removed: string[] = []
  for (const name of names) {
    if (!ours(name)) continue
    const file = path.join(dir, name)
    try {
      const stat = fs.lstatSync(file)
      if (!stat.isFile() || now - stat.mtimeMs < idleMs) continue
      fs.unlinkSync(file)
      removed.push(name)
    } catch { /* left for the next sweep */ }
  }
  return removed
}
