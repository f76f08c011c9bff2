/**
 * The lab's watchdog, a separate process: if the lab dies without cleaning up (SIGKILL, a
 * crash, a test runner that kills it), it kills the process groups the lab had started, so no
 * haproxy or node is left running. The lab writes "+PGID" / "-PGID" lines on our stdin.
 * Usage (by the lab only): node watchdog.js LAB_PID
 */
import { onLines } from '../util/lines.js'

const labPid = Number(process.argv[2])
const groups = new Set<number>()
onLines(process.stdin, (text) => {
  const line = text.trim()
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
  process.exit(0)
}
