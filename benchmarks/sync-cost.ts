import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { LabError } from '../src/errors.js'
import { round } from './handshake.js'
import type { Progress } from './progress.js'
import { table } from './report.js'
import { runProgram, valgrindVersion } from './callgrind.js'
import { backendOf, chachaBackend, SYNC_CIPHERS, type SyncCipher } from '../src/sync/sync-aead.js'

/**
 * The sync receive path's CPU work per update, counted in instructions by valgrind's callgrind:
 * on a shared 2-core VM, times and rates move by ±20% between runs of the same code, while the
 * instruction count of a run repeats to ~0.1%. For each AEAD a v2 packet may be sealed with
 * (sync-aead.ts), three processes on the same datagrams, side by side: `load` (start and read;
 * the baseline), `open` (only the AEAD open of each update: the floor of per-update
 * authentication) and `receive` (what the primary's sync service does per update).
 * Per update = (mode − load) ÷ updates.
 */
export interface SyncCostRow {
  cipher: SyncCipher
  /** Instructions of each whole process (callgrind's "Collected"). */
  totals: { load: number; open: number; receive: number }
  /** Instructions per update beyond the baseline. */
  openPerUpdate: number
  receivePerUpdate: number
  /** receive ÷ open: how far the receive path is from the AEAD floor. */
  receiveOverOpen: number
}

export interface SyncCostReport {
  updates: number
  /** One per cipher, the default (chacha20-poly1305) first. */
  rows: SyncCostRow[]
  /** The default cipher's receive path ÷ AES-256-GCM's. */
  defaultOverAes: number
  /** What runs ChaCha20-Poly1305 here: libsodium, or node:crypto where sodium-native does not load. */
  chachaBackend: string
  valgrind: string
}

const CHILD = fileURLToPath(new URL('./sync-cost-child.js', import.meta.url))
type Mode = 'load' | 'open' | 'receive'

/** Instructions of one child process under callgrind. */
async function count (mode: Mode, cipher: SyncCipher, dir: string, updates: number): Promise<number> {
  const { stdout, stderr } = await runProgram('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', process.execPath, '--single-threaded', CHILD, mode, dir, cipher], `sync-cost suite: the ${mode} process (${cipher})`)
  const done = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { updates?: number }
  if (mode !== 'load' && done.updates !== updates) throw new LabError(`sync-cost suite: the ${mode} process (${cipher}) handled ${String(done.updates)} of ${updates} updates`)
  const collected = /Collected : (\d+)/.exec(stderr)
  if (collected === null) throw new LabError(`sync-cost suite: no instruction count from callgrind for ${mode} (${cipher})`)
  return Number(collected[1])
}

export async function runSyncCostSuite (opts: { progress: Progress; updates: number }): Promise<SyncCostReport> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-sync-cost-'))
  try {
    await runProgram(process.execPath, [CHILD, 'seal', dir, String(opts.updates)], 'sync-cost suite: sealing the updates')
    const rows: SyncCostRow[] = []
    for (const cipher of SYNC_CIPHERS) {
      opts.progress.update(`sync-cost: ${opts.updates} updates sealed with ${cipher}; counting instructions under callgrind (load, open, receive; about a minute)`)
      // Two at a time: a count does not depend on what else runs.
      const [load, open] = await Promise.all([count('load', cipher, dir, opts.updates), count('open', cipher, dir, opts.updates)])
      opts.progress.update(`sync-cost: ${cipher}: load and open counted; receive`)
      const receive = await count('receive', cipher, dir, opts.updates)
      const openPerUpdate = (open - load) / opts.updates
      const receivePerUpdate = (receive - load) / opts.updates
      const row: SyncCostRow = {
        cipher,
        totals: { load, open, receive },
        openPerUpdate: round(openPerUpdate, 0),
        receivePerUpdate: round(receivePerUpdate, 0),
        receiveOverOpen: round(receivePerUpdate / openPerUpdate, 2)
      }
      rows.push(row)
      opts.progress.line(`sync-cost: ${cipher}: ${row.receivePerUpdate} instructions per update received, ${row.openPerUpdate} of them the floor (the AEAD open): ${row.receiveOverOpen}x`)
    }
    const [byDefault, aes] = [rows[0] as SyncCostRow, rows.find((r) => r.cipher === 'aes-256-gcm') as SyncCostRow]
    return { updates: opts.updates, rows, defaultOverAes: round(byDefault.receivePerUpdate / aes.receivePerUpdate, 2), chachaBackend, valgrind: await valgrindVersion() }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

export function syncCostTable (r: SyncCostReport): string {
  return [
    table(['AEAD', 'updates', 'open only, instructions/update', 'sync receive path, instructions/update', 'receive ÷ open'],
      r.rows.map((row) => [`${row.cipher} (${backendOf(row.cipher)})`, r.updates, row.openPerUpdate, row.receivePerUpdate, row.receiveOverOpen])),
    '',
    `receive path with the default cipher ÷ with aes-256-gcm: ${r.defaultOverAes}`,
    `counted by ${r.valgrind} (callgrind), node --single-threaded; per update = (process − baseline process) ÷ updates`
  ].join('\n')
}
