import fs from 'node:fs'
import type { Logger } from '../util/logger.js'
import { inaccessibleAs, type RunAs } from './privileges.js'

/** Names of what a node writes into --state-dir (with the temporary names it writes them under). */
const NODE_MADE = /^(?:self-signed\.pem|admin\.token|sync-replay-[A-Za-z0-9._-]+\.json)(?:\.\d+\.[0-9a-z]+)?$/

/**
 * With --user, just before the primary stops being root: --state-dir and the files the node
 * generated there (`files`: admin.token, self-signed.pem, the sync replay state) become the
 * user's (modes stay 0700/0600), so that the node after the switch (SIGHUP re-reads
 * self-signed.pem) and `tlsfleet drain` run as that user can read them. Files a start as root
 * made earlier are handed over the same way. Only the node's own files: an existing directory
 * that holds anything else keeps its owner (a warning says so), and operator-given files
 * (--cert, --admin-token-file, ...) are never in `files`.
 */
export function handStateDirTo (runAs: RunAs, stateDir: string, files: string[], log: Logger): void {
  let dir: fs.Stats
  try {
    dir = fs.statSync(stateDir)
  } catch {
    return // nothing generated (--admin-token-file, --cert, no sync): nothing to hand over
  }
  if (!dir.isDirectory()) return
  try {
    if (dir.uid !== runAs.uid) {
      const others = fs.readdirSync(stateDir).filter((name) => !NODE_MADE.test(name))
      if (others.length === 0) fs.chownSync(stateDir, runAs.uid, runAs.gid)
      else log.warn({ stateDir, user: runAs.user, others: others.slice(0, 5) }, '--state-dir holds files the node did not make: left to its owner; give the node a directory of its own')
    }
    for (const file of files) handFileTo(runAs, file, log)
  } catch (err) {
    log.warn({ err, stateDir, user: runAs.user }, '--state-dir could not be handed to --user')
  }
  const unusable = inaccessibleAs(runAs, [{ path: stateDir, access: 'write' }, ...files.filter((f) => fs.existsSync(f)).map((path) => ({ path, access: 'read' as const }))])
  if (unusable.length > 0) {
    log.warn({ user: runAs.user, paths: unusable }, '--state-dir is not usable by --user (a parent directory it cannot enter?): SIGHUP cannot re-read the self-signed certificate, nor `tlsfleet drain` as that user read admin.token')
  }
}

function handFileTo (runAs: RunAs, file: string, log: Logger): void {
  let fd: number
  try {
    // O_NOFOLLOW: a symbolic link put in its place must not make root chown what it points to.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    log.warn({ err, file, user: runAs.user }, 'state file not handed to --user')
    return
  }
  try {
    const stat = fs.fstatSync(fd)
    // A hard link to another file (nlink > 1) is not one the node made.
    if (!stat.isFile() || stat.nlink !== 1) log.warn({ file, user: runAs.user }, 'state file is not a plain file the node made: not handed to --user')
    else if (stat.uid !== runAs.uid || stat.gid !== runAs.gid) fs.fchownSync(fd, runAs.uid, runAs.gid)
  } finally {
    fs.closeSync(fd)
  }
}
