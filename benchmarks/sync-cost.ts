import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { LabError } from '../src/errors.js'
import { round } from './handshake.js'
import type { Progress } from './progress.js'
import { table } from './report.js'
import { runProgram, valgrindVersion } from './callgrind.js'
import { backendOf, chachaBackend, DEFAULT_SYNC_CIPHER, SYNC_CIPHERS, type SyncCipher } from '../src/sync/sync-aead.js'

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

/**
 * A datagram the receiver refuses, counted the same way, per datagram: what a forgery costs
 * (its AEAD open, and for a batch two opens at most) and what our own multicast echo costs
 * (refused before the open). Per datagram = (process − its baseline process) ÷ datagrams.
 */
export interface RefusedRow {
  /** forged: a lone New, tag flipped; forged-batch: a batch of Del, every tag flipped; own, own-batch: our echo. */
  kind: 'forged' | 'forged-batch' | 'own' | 'own-batch'
  cipher: SyncCipher
  /** Bytes of one datagram. */
  bytes: number
  packetsPerDatagram: number
  reason: 'bad_tag' | 'own'
  /** Packets the decoder refused as `reason`: every one of the datagrams' packets. */
  refused: number
  totals: { baseline: number; refused: number }
  perDatagram: number
  perPacket: number
}

export interface SyncCostReport {
  updates: number
  /** One per cipher, the default (chacha20-poly1305) first. */
  rows: SyncCostRow[]
  /** The default cipher's receive path ÷ AES-256-GCM's. */
  defaultOverAes: number
  /** Refused datagrams: forged (per cipher) and our own echo (the default cipher: it is not opened). */
  refused: { datagrams: number; rows: RefusedRow[] }
  /** What runs ChaCha20-Poly1305 here: libsodium, or node:crypto where sodium-native does not load. */
  chachaBackend: string
  valgrind: string
}

const CHILD = fileURLToPath(new URL('./sync-cost-child.js', import.meta.url))
type Mode = 'load' | 'open' | 'receive'

/** Instructions of one child process under callgrind, and the JSON line it ended with. */
async function callgrind<T> (args: string[], what: string): Promise<{ instructions: number; done: T }> {
  const { stdout, stderr } = await runProgram('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', process.execPath, '--single-threaded', CHILD, ...args], `sync-cost suite: the ${what} process`)
  const done = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as T
  const collected = /Collected : (\d+)/.exec(stderr)
  if (collected === null) throw new LabError(`sync-cost suite: no instruction count from callgrind for ${what}`)
  return { instructions: Number(collected[1]), done }
}

/** Instructions of one child process under callgrind. */
async function count (mode: Mode, cipher: SyncCipher, dir: string, updates: number): Promise<number> {
  const { instructions, done } = await callgrind<{ updates?: number }>([mode, dir, cipher], `${mode} (${cipher})`)
  if (mode !== 'load' && done.updates !== updates) throw new LabError(`sync-cost suite: the ${mode} process (${cipher}) handled ${String(done.updates)} of ${updates} updates`)
  return instructions
}

interface RefusedDone { datagrams: number; packets: number; refused: number; bytes: number }

/** One refused row from its process and its baseline's count; every packet must have been refused as `reason`. */
function refusedRow (kind: RefusedRow['kind'], cipher: SyncCipher, reason: RefusedRow['reason'], baseline: number, run: { instructions: number; done: RefusedDone }, datagrams: number): RefusedRow {
  const { done } = run
  if (done.datagrams !== datagrams || done.packets < datagrams || done.refused !== done.packets) {
    throw new LabError(`sync-cost suite: the ${kind} process (${cipher}) refused ${String(done.refused)} of ${String(done.packets)} packets in ${String(done.datagrams)} of ${datagrams} datagrams as ${reason}`)
  }
  const perDatagram = (run.instructions - baseline) / datagrams
  // A process's count moves by a few million instructions run to run: too few datagrams, and that is all it shows.
  if (perDatagram <= 0) throw new LabError(`sync-cost suite: the ${kind} process (${cipher}) counted no more than its baseline over ${datagrams} datagrams; raise --sync-cost-refused`)
  return {
    kind, cipher, bytes: done.bytes, packetsPerDatagram: done.packets / datagrams, reason, refused: done.refused,
    totals: { baseline, refused: run.instructions },
    perDatagram: round(perDatagram, 0),
    perPacket: round(perDatagram * datagrams / done.packets, 0)
  }
}

const REFUSED_LABEL: Record<RefusedRow['kind'], (r: RefusedRow) => string> = {
  forged: () => 'forged: a New, tag flipped',
  'forged-batch': (r) => `forged: a batch of ${r.packetsPerDatagram} Del, tags flipped`,
  own: () => 'our own echo: a New',
  'own-batch': (r) => `our own echo: a batch of ${r.packetsPerDatagram} New`
}

/** The refused rows, all against one baseline process that reads the same datagrams: forged per cipher, then our own echo. */
async function refusedRows (progress: Progress, dir: string, datagrams: number): Promise<RefusedRow[]> {
  const sets: Array<{ set: string; kind: RefusedRow['kind']; cipher: SyncCipher; reason: RefusedRow['reason'] }> = [
    ...SYNC_CIPHERS.map((cipher) => ({ set: `forged-${cipher}`, kind: 'forged' as const, cipher, reason: 'bad_tag' as const })),
    ...SYNC_CIPHERS.map((cipher) => ({ set: `forged-batch-${cipher}`, kind: 'forged-batch' as const, cipher, reason: 'bad_tag' as const })),
    { set: 'own', kind: 'own', cipher: DEFAULT_SYNC_CIPHER, reason: 'own' },
    { set: 'own-batch', kind: 'own-batch', cipher: DEFAULT_SYNC_CIPHER, reason: 'own' }
  ]
  progress.update(`sync-cost: ${datagrams} datagrams of each refused kind (forged, our own echo); counting instructions under callgrind (a baseline, then ${sets.length} kinds)`)
  const run = (set: string): Promise<{ instructions: number; done: RefusedDone }> => callgrind<RefusedDone>(['refused', dir, set], `refused ${set}`)
  const rows: RefusedRow[] = []
  let baseline: number | undefined
  // Two at a time, as above: the baseline with the first kind, then pairs.
  const pending = [...sets]
  while (pending.length > 0) {
    const batch = pending.splice(0, baseline === undefined ? 1 : 2)
    const [first, ...runs] = await Promise.all([baseline === undefined ? callgrind<RefusedDone>(['refused-load', dir], 'refused-load') : undefined, ...batch.map((s) => run(s.set))])
    if (first !== undefined) baseline = first.instructions
    batch.forEach((s, i) => {
      const row = refusedRow(s.kind, s.cipher, s.reason, baseline as number, runs[i] as { instructions: number; done: RefusedDone }, datagrams)
      rows.push(row)
      progress.line(`sync-cost: ${REFUSED_LABEL[row.kind](row)} (${row.cipher}, ${row.bytes} bytes): ${row.perDatagram} instructions per datagram, ${row.refused} packets refused ${row.reason}`)
    })
  }
  return rows
}

export async function runSyncCostSuite (opts: { progress: Progress; updates: number; refused: number }): Promise<SyncCostReport> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-sync-cost-'))
  try {
    await runProgram(process.execPath, [CHILD, 'seal', dir, String(opts.updates), String(opts.refused)], 'sync-cost suite: sealing the updates and forging datagrams')
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
    const refused = { datagrams: opts.refused, rows: await refusedRows(opts.progress, dir, opts.refused) }
    return { updates: opts.updates, rows, defaultOverAes: round(byDefault.receivePerUpdate / aes.receivePerUpdate, 2), refused, chachaBackend, valgrind: await valgrindVersion() }
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
    '',
    table(['refused datagram', 'AEAD', 'bytes', 'datagrams', 'packets refused', 'instructions/datagram', 'instructions/packet'],
      r.refused.rows.map((row) => [REFUSED_LABEL[row.kind](row), `${row.cipher} (${backendOf(row.cipher)})`, row.bytes, r.refused.datagrams, `${row.refused} ${row.reason}`, row.perDatagram, row.perPacket])),
    '',
    `counted by ${r.valgrind} (callgrind), node --single-threaded; per update = (process − baseline process) ÷ updates; per datagram = (process − baseline process) ÷ datagrams`
  ].join('\n')
}
