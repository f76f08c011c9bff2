/**
 * Forked by memory-child.ts in its "running" mode, as cluster forks a worker: sends `SESSIONS`
 * new sessions (32-byte IDs, DER_BYTES of DER) over the IPC channel (advanced serialization),
 * in batches of 8 as a busy worker's L1 does, then `{ t: 'done' }`.
 * Usage: node memory-feeder.js SESSIONS DER_BYTES
 */
import crypto from 'node:crypto'
import type { SessionUpdate } from '../src/cache/l2-responder.js'

const sessions = Number(process.argv[2] ?? 100_000)
const derBytes = Number(process.argv[3] ?? 150)
const createdAt = Math.floor(Date.now() / 1000)
let sent = 0

function turn (): void {
  // 50 batches a turn: the IPC channel's writes queue up as they would behind busy workers.
  for (let b = 0; b < 50 && sent < sessions; b++) {
    const updates: SessionUpdate[] = []
    for (let i = 0; i < 8 && sent < sessions; i++, sent++) updates.push({ t: 'session-new', id: crypto.randomBytes(32), der: crypto.randomBytes(derBytes), createdAt })
    process.send?.({ t: 'session-batch', updates })
  }
  if (sent < sessions) setImmediate(turn)
  else process.send?.({ t: 'done' })
}
turn()
