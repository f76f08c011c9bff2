import fs from 'node:fs'
import path from 'node:path'
import { ConfigError } from '../errors.js'
import type { Logger } from '../util/logger.js'
import { modeText, openPlainFile, privateDirProblem, trustedOwners, UnsafeFileError } from '../util/safe-files.js'
import { inaccessibleAs, type RunAs } from './privileges.js'

/**
 * Names of what a node writes into --state-dir, with the temporary names it writes them under
 * (`.NAME.RANDOM.tmp`; `NAME.PID.X` from older versions).
 */
const NODE_MADE = /^\.?(?:self-signed\.pem|admin\.token|sync-replay-[A-Za-z0-9._-]+\.json)(?:\.[0-9a-f]+\.tmp|\.\d+\.[0-9a-z]+)?$/

/**
 * --state-dir before a node reads or writes a file in it (admin.token, self-signed.pem, the
 * sync replay state): made (0700) when missing, else refused when group or others may write
 * to it or it belongs to anyone but root, this process's user or --user's (`owners`): whoever
 * can write there can plant links that make a node started as root read or overwrite other
 * files. Throws a ConfigError naming the directory and what to do (fs errors as they are).
 */
export function prepareStateDir (dir: string, owners: readonly number[] = trustedOwners()): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  const stat = fs.statSync(dir)
  const problem = privateDirProblem(stat, owners)
  if (problem === undefined) return
  const fix = !stat.isDirectory()
    ? 'give a directory'
    : owners.includes(stat.uid)
      ? 'run chmod 700 on it'
      : `if it is the node's own, run chown -R ${String(owners.at(-1))} on it and chmod 700; else give a directory of the node's own (a missing one is created 0700)`
  throw new ConfigError([`--state-dir "${dir}": ${problem}: whoever can write there can plant links that make the node read or overwrite other files; ${fix}`])
}

/**
 * What makes --state-dir replaceable though it is itself safe (prepareStateDir): an ancestor
 * another user owns, or one group or others may write to (they could rename the directory away
 * and put one of theirs in its place), unless that ancestor is sticky (/tmp) and the entry
 * below it is a trusted owner's (then only its owner may rename it). OpenSSH checks a path the
 * same way. One line per such ancestor, for a warning: refusing would break shared trees the
 * operator trusts (a group-writable /srv).
 */
export function stateDirAncestorProblems (dir: string, owners: readonly number[] = trustedOwners()): string[] {
  const problems: string[] = []
  let below = fs.realpathSync(dir)
  for (let ancestor = path.dirname(below); ; ancestor = path.dirname(ancestor)) {
    const stat = fs.lstatSync(ancestor)
    const mode = `mode ${modeText(stat)}, owner uid ${stat.uid}`
    if (!owners.includes(stat.uid)) problems.push(`${ancestor} (${mode}): another user's`)
    else if ((stat.mode & 0o022) !== 0 && ((stat.mode & 0o1000) === 0 || !owners.includes(fs.lstatSync(below).uid))) problems.push(`${ancestor} (${mode}): writable by group or others`)
    if (ancestor === path.dirname(ancestor)) return problems
    below = ancestor
  }
}

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
  let fd: number | undefined
  try {
    // A link put in its place must not make root chown what it points to (openPlainFile's rules).
    fd = openPlainFile(file, 'read', trustedOwners(runAs.uid))
  } catch (err) {
    if (err instanceof UnsafeFileError) log.warn({ file, user: runAs.user, problem: err.message }, 'state file is not a plain file the node made: not handed to --user')
    else log.warn({ err, file, user: runAs.user }, 'state file not handed to --user')
    return
  }
  if (fd === undefined) return
  try {
    const stat = fs.fstatSync(fd)
    if (stat.uid !== runAs.uid || stat.gid !== runAs.gid) fs.fchownSync(fd, runAs.uid, runAs.gid)
  } finally {
    fs.closeSync(fd)
  }
}
