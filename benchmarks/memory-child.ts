/**
 * Run by the memory suite (memory.ts) in a process of its own, with --expose-gc: fills L2 as the
 * primary does and reports what it cost. Usage (memory.ts passes the same flags):
 *   node --expose-gc --min-semi-space-size=16 --max-semi-space-size=16 memory-child.js SESSIONS DER_BYTES
 * → one JSON line on stdout.
 */
import crypto from 'node:crypto'
import v8 from 'node:v8'
import { PrimarySessionCache } from '../src/cache/primary-session-cache.js'

const sessions = Number(process.argv[2] ?? 100_000)
const derBytes = Number(process.argv[3] ?? 150)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('memory-child needs --expose-gc')

function settle (): { rss: number; heap: number; external: number } {
  for (let i = 0; i < 4; i++) gc?.()
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
const cache = new PrimarySessionCache({ maxEntries: sessions, maxBytes: Number.MAX_SAFE_INTEGER, lifetimeSeconds: 3600 })
const add = (from: number, to: number): void => {
  for (let i = from; i < to; i++) {
    const at = i * (32 + derBytes)
    // As the worker's IPC message delivers them: views into a larger buffer.
    cache.addLocal(material.subarray(at, at + 32), { der: material.subarray(at + 32, at + 32 + derBytes), createdAt })
  }
}
add(0, sessions)
const after = settle()
const held = cache.l2.size
process.stdout.write(JSON.stringify({
  sessions: held,
  derBytes,
  rssBytesPerSession: (after.rss - before.rss) / held,
  heapBytesPerSession: (after.heap - before.heap) / held,
  externalBytesPerSession: (after.external - before.external) / held
}) + '\n')
if (sink < 0) process.stdout.write('unreachable\n') // keeps the warm-up loop from being optimised away
