/**
 * The lab's watchdog, a separate process: if the lab dies without cleaning up (SIGKILL, a
 * crash, a test runner that kills it), it kills the process groups the lab had started, so no
 * haproxy or node is left running, and removes the lab's temporary directories (which hold a
 * farm secret and private keys). The lab writes "+PGID" / "-PGID" / "!DIR" lines on our stdin.
 * Usage (by the lab only): node watchdog.js LAB_PID
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { onLines } from '../util/lines.js'

const labPid = Number(process.argv[2])
const groups = new Set<number>()
const dirs = new Set<string>()
onLines(process.stdin, (text) => {
  const line = text.trim()
  if (line.startsWith('!')) {
    const dir = line.slice(1)
    // Never anything but a directory the lab made with mkdtemp under the temporary directory.
    if (path.dirname(dir) === os.tmpdir() && path.basename(dir).startsWith('tlsfleet-')) dirs.add(dir)
    return
  }
  const pgid = Number(line.slice(1))
  if (!Number.isInteger(pgid) || pgid <= 1) return
  if (line.startsWith('+')) groups.add(pgid)
  else groups.delete(pgid)
})
// stdin closes when the lab exits, however it exits.
process.stdin.on('end', () => cleanup())
process.stdin.on('error', () => cleanup())
const timer = setInterval(() => {
  try { process.kill(labPid, 0) } catch { cleanup() }
}, 500)

function cleanup (): void {
  clearInterval(timer)
  for (const pgid of groups) { try { process.kill(-pgid, 'SIGKILL') } catch { /* gone */ } }
  for (const dir of dirs) { try { fs.rmSync(dir, { recursive: true, force: true }) } catch { /* left */ } }
  process.exit(0)
}
