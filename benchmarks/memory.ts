import { fileURLToPath } from 'node:url'
import { LabError } from '../src/errors.js'
import { describeExit, waitForClose } from '../src/lab/child-waits.js'
import { spawnChild } from '../src/lab/processes.js'
import { round } from './handshake.js'
import type { Progress } from './progress.js'
import { table } from './report.js'

export type MemoryMode = 'settled' | 'running'

export interface MemoryRow {
  /** settled: bulk insert, RSS after full collections; running: fed over IPC, V8's defaults. */
  mode: MemoryMode
  sessions: number
  derBytes: number
  /** RSS growth per session (running: the marginal growth, a slope over the fill). */
  rssBytesPerSession: number
  /** RSS growth per session beyond its DER bytes: the 32-byte ID and what the store itself costs. */
  overheadBytesPerSession: number
  /** What L2 counts against --cache-max-bytes per session. */
  countedBytesPerSession: number
  /** countedBytesPerSession ÷ rssBytesPerSession. */
  countedOverMeasured: number
  /** settled only. */
  heapBytesPerSession?: number
  externalBytesPerSession?: number
  /** running only: RSS the process gained that does not grow with the cache (young generation, IPC buffers). */
  fixedBytes?: number
}

/** DER sizes measured: a TLS 1.2 session is ~130-200 bytes, one with a client certificate ~1 KB. */
export const MEMORY_DER_SIZES = [130, 160, 400, 1000]

const CHILD = fileURLToPath(new URL('./memory-child.js', import.meta.url))

async function measure (mode: MemoryMode, sessions: number, derBytes: number): Promise<MemoryRow> {
  // settled: the young generation pinned at V8's default maximum (16 MB semi-spaces): left
  // adaptive, it grows by tens of MB under a bulk insert whose objects all survive, a fixed
  // cost of a busy process that would otherwise be divided among the sessions. running: V8's
  // defaults, as a primary runs.
  const flags = mode === 'settled' ? ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16'] : []
  const child = spawnChild(process.execPath, [...flags, CHILD, String(sessions), String(derBytes), mode])
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  // Filling L2 with a million sessions takes seconds; ten minutes only ends a stuck process.
  const code = await waitForClose(child, { what: 'memory suite: the measuring process', timeoutMs: 600_000 })
  if (code !== 0 || out.trim() === '') throw new LabError(`memory suite: the measuring process ${describeExit(child, { before: 'printing its result' })}`)
  const r = JSON.parse(out) as { sessions: number; derBytes: number; rssBytesPerSession: number; countedBytesPerSession: number; heapBytesPerSession?: number; externalBytesPerSession?: number; fixedBytes?: number }
  return {
    mode,
    sessions: r.sessions,
    derBytes: r.derBytes,
    rssBytesPerSession: round(r.rssBytesPerSession, 0),
    overheadBytesPerSession: round(r.rssBytesPerSession - r.derBytes, 0),
    countedBytesPerSession: round(r.countedBytesPerSession, 0),
    countedOverMeasured: round(r.countedBytesPerSession / r.rssBytesPerSession, 2),
    ...(r.heapBytesPerSession !== undefined ? { heapBytesPerSession: round(r.heapBytesPerSession, 0) } : {}),
    ...(r.externalBytesPerSession !== undefined ? { externalBytesPerSession: round(r.externalBytesPerSession, 0) } : {}),
    ...(r.fixedBytes !== undefined ? { fixedBytes: round(r.fixedBytes, 0) } : {})
  }
}

/**
 * L2's memory, measured in fresh processes holding `sessions` sessions (capacity = `sessions`;
 * 32-byte IDs, DERs of typical sizes and a large one), two ways: `settled`, what the entries
 * themselves take after full collections; `running`, what they cost a primary at work (fed over
 * IPC, no forced collection), which is what --cache-max-bytes counts. The cache is built after
 * the first reading: what it allocates for its capacity counts as well.
 */
export async function runMemorySuite (opts: { progress: Progress; sessions: number; derSizes?: number[]; modes?: MemoryMode[] }): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = []
  for (const mode of opts.modes ?? ['settled', 'running'] as MemoryMode[]) {
    for (const derBytes of opts.derSizes ?? MEMORY_DER_SIZES) {
      const row = await measure(mode, opts.sessions, derBytes)
      rows.push(row)
      opts.progress.line(`memory (${mode}): ${row.sessions} sessions of ${derBytes} DER bytes: ${row.rssBytesPerSession} B RSS each, counted ${row.countedBytesPerSession} B (${row.countedOverMeasured}x)`)
    }
  }
  return rows
}

export function memoryTable (rows: MemoryRow[]): string {
  const dash = (v: number | undefined): string | number => v ?? '-'
  return table(['mode', 'sessions in L2', 'DER bytes', 'RSS B/session', 'beyond the DER B/session', 'counted B/session', 'counted / RSS', 'JS heap B/session', 'external B/session', 'fixed MB'],
    rows.map((r) => [r.mode, r.sessions, r.derBytes, r.rssBytesPerSession, r.overheadBytesPerSession, r.countedBytesPerSession, r.countedOverMeasured, dash(r.heapBytesPerSession), dash(r.externalBytesPerSession), r.fixedBytes !== undefined ? round(r.fixedBytes / 2 ** 20, 1) : '-']))
}
