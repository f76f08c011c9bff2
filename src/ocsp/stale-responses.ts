import fs from 'node:fs'
import path from 'node:path'

/**
 * The only names the node writes in --ocsp-dir: `<SHA-256 of the leaf, hex>.der`
 * (ocsp-stapler.ts). Anything else there is someone else's and never touched.
 */
const RESPONSE_FILE = /^([0-9a-f]{64})\.der$/

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
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return []
  }
  const removed: string[] = []
  for (const name of names) {
    const key = RESPONSE_FILE.exec(name)?.[1]
    if (key === undefined || served.has(key)) continue
    const file = path.join(dir, name)
    try {
      const stat = fs.lstatSync(file)
      // A link or a directory under that name is not a file the node wrote (it writes by rename).
      if (!stat.isFile() || now - stat.mtimeMs < idleMs) continue
      fs.unlinkSync(file)
      removed.push(name)
    } catch { /* gone already, or not ours to remove: left */ }
  }
  return removed
}
