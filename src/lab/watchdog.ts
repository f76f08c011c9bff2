/**
 * The lab's watchdog, a separate process: if the lab dies without cleaning up (SIGKILL, a
 * crash, a test runner that kills it), it kills the process groups the lab had started, so no
 * haproxy or node is left running. The lab writes "+PGID" / "-PGID" lines on our stdin.
 * Usage (by the lab only): node watchdog.js LAB_PID
 */
const labPid = Number(process.argv[2])
const groups = new Set<number>()
let pending = ''
process.stdin.on('data', (chunk: Buffer) => {
  pending += chunk.toString()
  let nl: number
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl).trim()
    pending = pending.slice(nl + 1)
    const pgid = Number(line.slice(1))
    if (!Number.isInteger(pgid) || pgid <= 1) continue
    if (line.startsWith('+')) groups.add(pgid)
    else groups.delete(pgid)
  }
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
