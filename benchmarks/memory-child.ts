/**
 * Run by the memory suite (memory.ts) in a process of its own: fills L2 as the primary does and
 * reports what it cost. Two modes:
 * - `settled` (with --expose-gc and the young generation pinned): sessions added in bulk, RSS
 *   read after full collections: what the entries themselves take.
 * - `running` (V8's defaults, no forced collection): sessions arrive from a forked process over
 *   IPC, in batches, through L2's responder, as from busy workers; RSS is read as the cache
 *   fills. Its growth per session (a least-squares slope over the last 70% of the fill) is what
 *   an L2 entry costs a primary at work, garbage collector headroom included: what
 *   --cache-max-bytes counts (session-store.ts). The rest is a fixed part (young generation,
 *   IPC buffers) that does not grow with the cache.
 * Usage: node [flags] memory-child.js SESSIONS DER_BYTES [settled|running] → one JSON line on stdout.
 */
import { fork } from 'node:child_process'
import crypto from 'node:crypto'
import { fileURLToPath } from 'node:url'
import v8 from 'node:v8'
import { L2Responder, type L1Request } from '../src/cache/l2-responder.js'
import { PrimarySessionCache } from '../src/cache/primary-session-cache.js'

const sessions = Number(process.argv[2] ?? 100_000)
const derBytes = Number(process.argv[3] ?? 150)
const mode = process.argv[4] === 'running' ? 'running' : 'settled'

function newCache (): PrimarySessionCache {
  return new PrimarySessionCache({ maxEntries: sessions, maxBytes: Number.MAX_SAFE_INTEGER, lifetimeSeconds: 3600 })
}

function settled (): void {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('memory-child settled needs --expose-gc')
  const settle = (): { rss: number; heap: number; external: number } => {
    for (let i = 0; i < 4; i++) gc()
    const m = process.memoryUsage()
    return { rss: m.rss, heap: v8.getHeapStatistics().used_heap_size, external: m.external + m.arrayBuffers }
  }
  // Random bytes made in bulk beforehand, so the measured difference holds only the cache.
  const material = crypto.randomBytes(sessions * (32 + derBytes))
  const createdAt = Math.floor(Date.now() / 1000)
  // The young generation grows to its maximum size under the churn of the first few thousand
  // insertions (tens of MB of RSS that any busy process has anyway); grow it first, so the
  // difference below holds what the cache keeps, not the collector's working space.
  let sink = 0
  for (let i = 0; i < 4 * sessions; i++) sink += Buffer.allocUnsafe(derBytes + 36).toString('latin1').length
  const before = settle()
  // Built after the first reading: what it allocates for its capacity counts too.
  const cache = newCache()
  for (let i = 0; i < sessions; i++) {
    const at = i * (32 + derBytes)
    // As the worker's IPC message delivers them: views into a larger buffer.
    cache.addLocal(material.subarray(at, at + 32), { der: material.subarray(at + 32, at + 32 + derBytes), createdAt })
  }
  const after = settle()
  const held = cache.l2.size
  process.stdout.write(JSON.stringify({
    mode,
    sessions: held,
    derBytes,
    rssBytesPerSession: (after.rss - before.rss) / held,
    heapBytesPerSession: (after.heap - before.heap) / held,
    externalBytesPerSession: (after.external - before.external) / held,
    countedBytesPerSession: cache.l2.bytes / held
  }) + '\n')
  if (sink < 0) process.stdout.write('unreachable\n') // keeps the warm-up loop from being optimised away
}

/** Least-squares slope and intercept of y over x. */
function fit (points: Array<[number, number]>): { slope: number; intercept: number } {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  const slope = sxx > 0 ? sxy / sxx : 0
  return { slope, intercept: my - slope * mx }
}

function running (): void {
  const start = process.memoryUsage().rss
  // Built after the first reading: what it allocates for its capacity counts too.
  const cache = newCache()
  const responder = new L2Responder(cache, { reply: () => {}, broadcast: () => {} })
  const marks: Array<[number, number]> = []
  const step = Math.max(1, Math.floor(sessions / 20))
  let nextMark = step
  const feeder = fork(fileURLToPath(new URL('./memory-feeder.js', import.meta.url)), [String(sessions), String(derBytes)], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  // A feeder that dies before 'done' would leave this process to end with nothing said (its
  // channel closed, nothing else to wait for): said, with a failing status, for the suite.
  feeder.once('exit', (code, signal) => {
    process.stderr.write(`memory-child: the feeder exited (code ${String(code)}, signal ${String(signal)}) before it was done\n`)
    process.exit(1)
  })
  feeder.on('message', (message: L1Request | { t: 'done' }) => {
    if (message.t === 'done') {
      feeder.removeAllListeners('exit')
      feeder.kill()
      const held = cache.l2.size
      // The first 30% of the fill carries the young generation's growth: fit over the rest.
      const { slope, intercept } = fit(marks.filter(([n]) => n >= 0.3 * sessions))
      process.stdout.write(JSON.stringify({
        mode,
        sessions: held,
        derBytes,
        rssBytesPerSession: slope,
        fixedBytes: intercept,
        totalRssBytesPerSession: (process.memoryUsage().rss - start) / held,
        countedBytesPerSession: cache.l2.bytes / held
      }) + '\n')
      process.exit(0)
    }
    responder.handle(1, message)
    if (cache.l2.size >= nextMark) {
      marks.push([cache.l2.size, process.memoryUsage().rss - start])
      nextMark += step
    }
  })
}

if (mode === 'settled') settled()
else running()
