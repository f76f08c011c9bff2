import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { LabError } from '../src/errors.js'
import { round } from './handshake.js'
import type { Progress } from './progress.js'
import { table } from './report.js'

export interface MemoryRow {
  sessions: number
  derBytes: number
  /** RSS growth per session, all of it. */
  rssBytesPerSession: number
  /** RSS growth per session beyond its DER bytes: the 32-byte ID and what the store itself costs. */
  overheadBytesPerSession: number
  heapBytesPerSession: number
  externalBytesPerSession: number
}

const CHILD = fileURLToPath(new URL('./memory-child.js', import.meta.url))

async function measure (sessions: number, derBytes: number): Promise<MemoryRow> {
  // The young generation pinned at V8's default maximum (16 MB semi-spaces): left adaptive, it
  // grows by tens of MB under a bulk insert whose objects all survive, a fixed cost of a busy
  // process that would otherwise be divided among the sessions.
  const flags = ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16']
  const child = spawn(process.execPath, [...flags, CHILD, String(sessions), String(derBytes)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new LabError(`memory suite: the measuring process failed (${String(code)}): ${err.trim()}`)
  const r = JSON.parse(out) as Omit<MemoryRow, 'overheadBytesPerSession'>
  return {
    sessions: r.sessions,
    derBytes: r.derBytes,
    rssBytesPerSession: round(r.rssBytesPerSession, 0),
    overheadBytesPerSession: round(r.rssBytesPerSession - r.derBytes, 0),
    heapBytesPerSession: round(r.heapBytesPerSession, 0),
    externalBytesPerSession: round(r.externalBytesPerSession, 0)
  }
}

/**
 * L2's memory: a fresh process fills the primary's session cache (capacity = `sessions`) with
 * `sessions` sessions (32-byte IDs, DERs of typical sizes and a large one) and reports its RSS
 * growth per session after a full GC, so what a node holds at --cache-size is measured, not
 * estimated. The cache is built after the first reading: what it allocates for its capacity
 * counts as well.
 */
export async function runMemorySuite (opts: { progress: Progress; sessions: number }): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = []
  for (const derBytes of [130, 160, 1000]) {
    const row = await measure(opts.sessions, derBytes)
    rows.push(row)
    opts.progress.line(`memory: ${row.sessions} sessions of ${derBytes} DER bytes: ${row.rssBytesPerSession} B RSS each, ${row.overheadBytesPerSession} B beyond the DER`)
  }
  return rows
}

export function memoryTable (rows: MemoryRow[]): string {
  return table(['sessions in L2', 'DER bytes', 'RSS B/session', 'beyond the DER B/session', 'JS heap B/session', 'external B/session'],
    rows.map((r) => [r.sessions, r.derBytes, r.rssBytesPerSession, r.overheadBytesPerSession, r.heapBytesPerSession, r.externalBytesPerSession]))
}
