import cluster from 'node:cluster'
import fs from 'node:fs'
import path from 'node:path'
import v8 from 'node:v8'

/**
 * Preloaded into a node under test (NODE_OPTIONS=--import, which its workers inherit) with
 * TLSFLEET_TEST_IPC_RECORD=<dir>: each worker appends every message the primary sends it, as V8
 * serialises it (Buffers as their bytes), to <dir>/<pid>.bin, and a line per message to
 * <dir>/<pid>.jsonl (its `t`, and for `init` the settings' field names). A test then scans
 * what a worker process received. The primary records nothing.
 */
const dir = process.env.TLSFLEET_TEST_IPC_RECORD
// cluster.isWorker: Node has already removed NODE_UNIQUE_ID when a preload runs.
if (dir !== undefined && cluster.isWorker) {
  const base = path.join(dir, String(process.pid))
  process.on('message', (message: unknown) => {
    fs.appendFileSync(`${base}.bin`, v8.serialize(message))
    const t = typeof message === 'object' && message !== null ? (message as { t?: unknown }).t : undefined
    const settings = t === 'init' ? (message as { settings?: object }).settings : undefined
    fs.appendFileSync(`${base}.jsonl`, JSON.stringify({ t, ...(settings !== undefined ? { settingsKeys: Object.keys(settings) } : {}) }) + '\n')
  })
}
