import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { LabError } from '../src/errors.js'
import { round } from './handshake.js'
import type { Progress } from './progress.js'
import { table } from './report.js'
import { runProgram, valgrindVersion } from './callgrind.js'

/**
 * The sync receive path's CPU work per update, counted in instructions by valgrind's callgrind:
 * on a shared 2-core VM, times and rates move by ±20% between runs of the same code, while the
 * instruction count of a run repeats to ~0.1%. Three processes on the same datagrams, side by
 * side: `load` (start and read; the baseline), `open` (only the AES-256-GCM open of each
 * update through node:crypto: the floor of per-update authentication in Node.js) and `receive`
 * (what the primary's sync service does per update). Per update = (mode − load) ÷ updates.
 */
export interface SyncCostReport {
  updates: number
  /** Instructions of each whole process (callgrind's "Collected"). */
  totals: { load: number; open: number; receive: number }
  /** Instructions per update beyond the baseline. */
  openPerUpdate: number
  receivePerUpdate: number
  /** receive ÷ open: how far the receive path is from the AEAD floor. */
  receiveOverOpen: number
  valgrind: string
}

const CHILD = fileURLToPath(new URL('./sync-cost-child.js', import.meta.url))
const MODES = ['load', 'open', 'receive'] as const

/** Instructions of one child process under callgrind. */
async function count (mode: typeof MODES[number], dir: string, updates: number): Promise<number> {
  const { stdout, stderr } = await runProgram('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', process.execPath, '--single-threaded', CHILD, mode, dir], `sync-cost suite: the ${mode} process`)
  const done = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { updates?: number }
  if (mode !== 'load' && done.updates !== updates) throw new LabError(`sync-cost suite: the ${mode} process handled ${String(done.updates)} of ${updates} updates`)
  const collected = /Collected : (\d+)/.exec(stderr)
  if (collected === null) throw new LabError(`sync-cost suite: no instruction count from callgrind for ${mode}`)
  return Number(collected[1])
}

export async function runSyncCostSuite (opts: { progress: Progress; updates: number }): Promise<SyncCostReport> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-sync-cost-'))
  try {
    await runProgram(process.execPath, [CHILD, 'seal', dir, String(opts.updates)], 'sync-cost suite: sealing the updates')
    opts.progress.update(`sync-cost: ${opts.updates} updates sealed; counting instructions under callgrind (load, open, receive; about a minute)`)
    // Two at a time: a count does not depend on what else runs.
    const [load, open] = await Promise.all([count('load', dir, opts.updates), count('open', dir, opts.updates)])
    opts.progress.update('sync-cost: load and open counted; receive')
    const receive = await count('receive', dir, opts.updates)
    const openPerUpdate = (open - load) / opts.updates
    const receivePerUpdate = (receive - load) / opts.updates
    const report: SyncCostReport = {
      updates: opts.updates,
      totals: { load, open, receive },
      openPerUpdate: round(openPerUpdate, 0),
      receivePerUpdate: round(receivePerUpdate, 0),
      receiveOverOpen: round(receivePerUpdate / openPerUpdate, 2),
      valgrind: await valgrindVersion()
    }
    opts.progress.line(`sync-cost: ${report.receivePerUpdate} instructions per update received, ${report.openPerUpdate} of them the floor (AES-GCM open): ${report.receiveOverOpen}x`)
    return report
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

export function syncCostTable (r: SyncCostReport): string {
  return [
    table(['updates', 'AES-GCM open only, instructions/update', 'sync receive path, instructions/update', 'receive ÷ open'],
      [[r.updates, r.openPerUpdate, r.receivePerUpdate, r.receiveOverOpen]]),
    '',
    `counted by ${r.valgrind} (callgrind), node --single-threaded; per update = (process − baseline process) ÷ updates`
  ].join('\n')
}
