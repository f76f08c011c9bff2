import cluster from 'node:cluster'
import fs from 'node:fs'
import path from 'node:path'

/**
 * Preloaded into a node under test (NODE_OPTIONS=--import, which its workers inherit): makes
 * chosen cluster workers misbehave around their start, without a hook in the product. Workers
 * are chosen by cluster id: 1..N are those of the node's start (--workers N), replacements get
 * N+1, N+2, ... in fork order. A list is `2`, `3,4`, or `3-` (3 and every later one).
 *
 * - TLSFLEET_TEST_HOLD_WORKERS: these block before they even load the worker code, so they
 *   never tell the primary they are ready nor listen (an event loop stuck at start: a worker
 *   that hangs building its contexts). Blocked for TLSFLEET_TEST_HOLD_MS (default 60 s) with
 *   Atomics.wait, which stalls the thread as a busy loop would but leaves the test machine's
 *   cores to the other tests.
 * - TLSFLEET_TEST_CRASH_AFTER_LISTENING_MS: these (TLSFLEET_TEST_CRASH_WORKERS, default every
 *   one) throw an uncaught exception that long after they tell the primary they listen: a
 *   crash loop that still lets the node start.
 * - TLSFLEET_TEST_FAULT_DIR: every worker writes its pid to <dir>/<id>.pid first.
 */
function chosen (list: string | undefined, id: number): boolean {
  if (list === undefined || list === '') return false
  return list.split(',').some((item) => {
    const from = /^(\d+)-$/.exec(item.trim())
    return from !== null ? id >= Number(from[1]) : Number(item) === id
  })
}

const id = cluster.worker?.id
if (cluster.isWorker && id !== undefined) {
  const dir = process.env.TLSFLEET_TEST_FAULT_DIR
  if (dir !== undefined) fs.writeFileSync(path.join(dir, `${id}.pid`), String(process.pid))

  const crashAfter = Number(process.env.TLSFLEET_TEST_CRASH_AFTER_LISTENING_MS ?? 0)
  const crashList = process.env.TLSFLEET_TEST_CRASH_WORKERS ?? '1-'
  const send = process.send
  if (crashAfter > 0 && chosen(crashList, id) && send !== undefined) {
    // Watch what the worker tells the primary: `listening` starts the countdown.
    process.send = function (this: NodeJS.Process, message: unknown, ...rest: unknown[]): boolean {
      if (typeof message === 'object' && message !== null && (message as { t?: unknown }).t === 'listening') {
        setTimeout(() => { throw new Error(`crash asked for by the test, ${crashAfter} ms after listening`) }, crashAfter)
      }
      return (send as (...args: unknown[]) => boolean).call(this, message, ...rest)
    } as typeof process.send
  }

  if (chosen(process.env.TLSFLEET_TEST_HOLD_WORKERS, id)) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(process.env.TLSFLEET_TEST_HOLD_MS ?? 60_000))
  }
}
