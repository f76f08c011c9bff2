import { execFileSync } from 'node:child_process'
import { ConfigError, PrivilegeError } from '../errors.js'

/** The identity --user/--group name, resolved once in the primary (workers get the numbers). */
export interface RunAs {
  user: string
  uid: number
  group: string
  gid: number
  /** Supplementary groups: the user's own (id -G), as a login would have them; with --group, that group alone. */
  groups: number[]
}

/**
 * Resolve --user/--group through the system's user database (getent, so NSS sources count),
 * before anything is read or bound. Undefined when there is nothing to switch (no --user, or
 * already running as that user). Switching needs root: anyone else gets a refusal here rather
 * than workers that silently keep running as the starting user.
 */
export function resolveRunAs (user: string, group: string): RunAs | undefined {
  if (user === '') return undefined
  const passwd = getent('passwd', user)
  if (passwd === undefined) throw new ConfigError([`--user "${user}": no such user on this machine`])
  const [name = user, , uidText = '', gidText = ''] = passwd.split(':')
  let gid = Number(gidText)
  let groupName = String(gid)
  if (group !== '') {
    const entry = getent('group', group)
    if (entry === undefined) throw new ConfigError([`--group "${group}": no such group on this machine`])
    const [gname = group, , id = ''] = entry.split(':')
    gid = Number(id)
    groupName = gname
  } else {
    groupName = getent('group', String(gid))?.split(':')[0] ?? groupName
  }
  // An explicit --group replaces the user's groups, as `runuser -g` does (HAProxy's `group`
  // keeps no supplementary group at all): the user's own primary group must not stay.
  const groups = group !== '' ? [gid] : [...new Set([gid, ...supplementaryGroups(name)])]
  const runAs: RunAs = { user: name, uid: Number(uidText), group: groupName, gid, groups }
  const current = process.getuid?.()
  if (current === undefined) throw new PrivilegeError(`--user ${user}: this platform cannot switch users`)
  if (current === runAs.uid && process.getgid?.() === runAs.gid) return undefined
  if (current !== 0) {
    throw new PrivilegeError(`--user ${user}: switching to another user needs root, and tlsfleet runs as uid ${current}; start it as root (it binds, reads the keys, then runs as ${name}) or drop --user`)
  }
  return runAs
}

/**
 * Become `runAs` for good: supplementary groups, group, then user (in that order: once the
 * user is not root the others can no longer be changed). Throws a PrivilegeError when any step
 * fails or the result is not what was asked, so nobody goes on serving as root by mistake.
 */
export function dropPrivileges (runAs: RunAs): void {
  try {
    process.setgroups?.(runAs.groups)
    process.setgid?.(runAs.gid)
    process.setuid?.(runAs.uid)
  } catch (err) {
    throw new PrivilegeError(`cannot switch to user ${runAs.user} (uid ${runAs.uid}, gid ${runAs.gid}): ${(err as Error).message}`)
  }
  if (process.getuid?.() !== runAs.uid || process.geteuid?.() !== runAs.uid || process.getgid?.() !== runAs.gid) {
    throw new PrivilegeError(`switching to user ${runAs.user} did not take effect (uid ${String(process.getuid?.())}, gid ${String(process.getgid?.())})`)
  }
}

/**
 * Which of these paths `runAs` could not use, asked of the kernel itself (a short child process
 * running as that user, so ACLs and parent directories count): what the node will need after
 * the switch, checked before it binds anything.
 */
export function inaccessibleAs (runAs: RunAs, checks: Array<{ path: string; access: 'read' | 'write' }>): string[] {
  if (checks.length === 0) return []
  const script = 'const fs=require("node:fs");const bad=[];for(const [p,a] of JSON.parse(process.argv[1])){try{fs.accessSync(p,a==="write"?fs.constants.W_OK|fs.constants.X_OK:fs.constants.R_OK)}catch{bad.push(p)}}process.stdout.write(JSON.stringify(bad))'
  const output = execFileSync(process.execPath, ['-e', script, JSON.stringify(checks.map((c) => [c.path, c.access]))], { uid: runAs.uid, gid: runAs.gid, cwd: '/', encoding: 'utf8', timeout: 10_000 })
  return JSON.parse(output) as string[]
}

function supplementaryGroups (user: string): number[] {
  try {
    return execFileSync('id', ['-G', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/).map(Number).filter(Number.isInteger)
  } catch {
    return []
  }
}

function getent (database: 'passwd' | 'group', key: string): string | undefined {
  try {
    return execFileSync('getent', [database, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0]
  } catch {
    return undefined
  }
}
