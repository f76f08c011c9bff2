import fs from 'node:fs'
import { ConfigError } from '../errors.js'
import { inaccessibleAs, type RunAs } from '../node/privileges.js'
import { privateDirProblem, trustedOwners } from '../util/safe-files.js'

/**
 * --ocsp-dir must be a directory the node can write to as the user it will run as (responses
 * are fetched and kept after the switch to --user), and one nobody else can write to (root,
 * the node's or --user's, not writable by group or others). A missing one is created (for that user).
 * Checked at start, before anything binds; the error names the option and the directory.
 */
export function checkOcspDir (dir: string, runAs: RunAs | undefined): void {
  try {
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 })
      if (runAs !== undefined) fs.chownSync(dir, runAs.uid, runAs.gid)
    }
  } catch (err) {
    throw new ConfigError([`--ocsp-dir "${dir}": cannot create it: ${(err as Error).message}`])
  }
  const stat = fs.statSync(dir)
  // Said on its own: privateDirProblem's wording for it comes with a chmod advice that does not apply.
  if (!stat.isDirectory()) throw new ConfigError([`--ocsp-dir "${dir}": not a directory`])
  // The node writes there as root (before the switch, or without --user): whoever else may
  // write there could plant links at the names it writes.
  const problem = privateDirProblem(stat, trustedOwners(runAs?.uid))
  if (problem !== undefined) throw new ConfigError([`--ocsp-dir "${dir}": ${problem}; run chmod go-w on it and chown it to the node's user (--user's, if given)`])
  if (runAs !== undefined) {
    if (inaccessibleAs(runAs, [{ path: dir, access: 'write' }]).length > 0) {
      throw new ConfigError([`--ocsp-dir "${dir}": not writable by --user ${runAs.user} (uid ${runAs.uid}), who fetches and keeps the OCSP responses; chown it to that user`])
    }
    return
  }
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK)
  } catch {
    throw new ConfigError([`--ocsp-dir "${dir}": not writable by this process (uid ${String(process.getuid?.())}); responses are kept there`])
  }
}
