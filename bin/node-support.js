// Which Node.js versions tlsfleet runs on: 22 from 22.19, and 24 or later, and how to hand a
// command to another Node.js. Plain JavaScript importing only Node's builtins, so that any
// Node.js can load it: the launcher and scripts/supported-node.mjs both ask it before anything
// else is loaded.
import os from 'node:os'

/** Whether Node.js `version` ("24.21.0", as in process.versions.node) is supported. */
export function isSupportedNode (version) {
  const [major, minor] = version.split('.').map(Number)
  return major > 22 || (major === 22 && minor >= 19)
}

export const SUPPORTED_NODE = '22 (22.19 or later) or 24'

/**
 * Run as `child` runs: the stop and reload signals passed on to it (it may get them directly too,
 * from a terminal or systemd; the node takes a stop signal repeated within a second for the same
 * request), and its exit status as ours (128 + the signal's number when a signal ended it).
 */
export function followChild (child) {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => { child.kill(signal) })
  child.on('exit', (code, signal) => { process.exit(code ?? 128 + (os.constants.signals[signal] ?? 0)) })
  if (process.env.npm_lifecycle_event !== undefined) stopWhenOrphaned(child)
}

/**
 * Under an npm script (`npm start`, `npm test`), our parent is the `sh -c` npm runs the script
 * with. npm passes a SIGTERM it gets to that shell, which dies of it without passing it on (dash
 * does not), so the node would run on, orphaned and holding its ports, after `kill <npm>`. Once
 * that shell is gone (we are given another parent), stop the child as a SIGTERM would have.
 */
function stopWhenOrphaned (child) {
  const parent = process.ppid
  const watch = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(watch)
    child.kill('SIGTERM')
  }, 250)
  watch.unref()
}
