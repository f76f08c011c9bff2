import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { ConfigError, SyncStateError } from '../errors.js'
import { prepareStateDir } from '../node/state-dir.js'
import type { Logger } from '../util/logger.js'
import { openPlainFile, trustedOwners } from '../util/safe-files.js'
import type { ReplayGuard, ReplayMarks } from './replay-guard.js'

/**
 * The replay window across restarts (the exact guarantee: docs/wire-protocol.md, "Replay across
 * restarts"). One small file in --state-dir holds, as one JSON line:
 *
 * - per sender, the highest sequence and newest sent-at accepted (the replay guard's marks), and
 *   the guard's eviction horizon: saved every second and at a clean stop, restored at start;
 * - `ceilingMs`, a promise: no packet this process accepted is dated after it. It runs a little
 *   ahead of the clock, and a packet dated beyond it is accepted only after a new ceiling is
 *   written (beforeAccept), so the promise holds whenever and however the process dies;
 * - `clean`, true only once the process stopped in order (its marks are then complete);
 * - `floorMs`, the floor this process applied, handed on to the next.
 *
 * At start: after a clean stop, updates dated after start - skew are judged by the restored
 * marks; after any other end, updates dated at or before the old ceiling are refused too
 * (`before_start`) for the moment it takes the clock to pass it. A file that cannot be read
 * (e.g. left empty by a power loss) refuses everything dated up to start + skew: whatever an
 * earlier process accepted was dated at most that. No file at all is a first start.
 *
 * The file is written in place through a descriptor opened at start, so it stays writable after
 * the switch to --user. No fsync: a process that dies leaves its writes in the page cache.
 * That descriptor is opened as root, in a directory --user may write to: never through a link
 * (safe-files.ts), or root would overwrite whatever it points to.
 */
export interface ReplayStateOptions {
  file: string
  /** This process's start (ms). */
  startMs: number
  maxSkewMs: number
  sessionLifetimeMs: number
  log: Logger
  now?: () => number
  /** How far ahead of the clock the saved ceiling runs (ms). */
  aheadMs?: number
  /** How often the marks and ceiling are saved (ms). */
  intervalMs?: number
  /** Who may own the file and its directory (default: root and this process's user; the node adds --user's). */
  owners?: readonly number[]
}

/** How the previous process left the file. */
export type PreviousEnd = 'none' | 'clean' | 'unclean' | 'unreadable'

const FORMAT = 'tlsfleet sync replay state'
const VERSION = 1

interface SavedState {
  format: typeof FORMAT
  version: typeof VERSION
  boot: string
  clean: boolean
  savedAtMs: number
  floorMs: number
  ceilingMs: number
  horizonMs: number | null
  /** node id (hex) -> [highest sequence (decimal), newest sent-at ms] */
  senders: Record<string, [string, number]>
}

export class ReplayState {
  /** New, Del and SnapshotRequest dated at or before this are refused as `before_start`. */
  readonly notBeforeMs: number
  readonly previous: PreviousEnd
  /**
   * The previous process's ceiling: its clock ran below it until it stopped, so (at under 10^6
   * packets/s, as the sequence counter assumes) every sequence it sent was below this * 1000.
   * A start whose clock is behind that (a VM restored from a snapshot, NTP stepping back
   * between two starts) continues from there, or peers would refuse it as replays.
   */
  readonly previousCeilingMs: number | undefined
  /** When the previous process last saved, by its clock: after this start means this clock went back. */
  readonly previousSavedAtMs: number | undefined
  private readonly boot = crypto.randomBytes(8).toString('hex')
  private readonly now: () => number
  private readonly aheadMs: number
  private readonly intervalMs: number
  private fd?: number
  private timer?: NodeJS.Timeout
  /** The ceiling as last written: every packet accepted so far is dated at or before it. */
  private ceilingMs: number
  private newestAcceptedMs = -Infinity
  private failing = false

  constructor (private readonly opts: ReplayStateOptions, private readonly guard: ReplayGuard) {
    this.now = opts.now ?? Date.now
    this.aheadMs = opts.aheadMs ?? 2000
    this.intervalMs = opts.intervalMs ?? 1000
    const startFloor = opts.startMs - opts.maxSkewMs
    const owners = opts.owners ?? trustedOwners()
    let text: string | undefined
    try {
      prepareStateDir(path.dirname(opts.file), owners)
      // Read through the descriptor that is kept: what was read is what gets written.
      this.fd = openPlainFile(opts.file, 'write', owners)
      text = this.fd !== undefined ? fs.readFileSync(this.fd, 'utf8') : undefined
      // A new file is made by the first save (start): a start refused before then must not leave
      // an empty one, which the next start could not tell from one a power loss emptied.
      if (text === undefined) fs.accessSync(path.dirname(opts.file), fs.constants.W_OK)
    } catch (err) {
      if (this.fd !== undefined) fs.closeSync(this.fd)
      if (err instanceof ConfigError) throw err // an unsafe --state-dir: the configuration must change
      throw new SyncStateError(opts.file, err)
    }
    const saved = text === undefined ? undefined : parseState(text)
    this.previousCeilingMs = saved?.ceilingMs
    this.previousSavedAtMs = saved?.savedAtMs
    if (text === undefined) {
      this.previous = 'none'
      this.notBeforeMs = startFloor
    } else if (saved === undefined) {
      this.previous = 'unreadable'
      this.notBeforeMs = opts.startMs + opts.maxSkewMs
    } else {
      this.previous = saved.clean ? 'clean' : 'unclean'
      this.notBeforeMs = Math.max(startFloor, saved.floorMs, saved.clean ? -Infinity : saved.ceilingMs)
      guard.restore(marksOf(saved))
    }
    // Never below the floor handed on: a packet refused now must stay refused after another crash.
    this.ceilingMs = Math.max(this.notBeforeMs, opts.startMs + this.aheadMs)
  }

  /** First save (marking the file as ours and unclean), then every interval. Call once the socket is bound. */
  start (): void {
    const facts = { file: this.opts.file, previous: this.previous, updatesNotBefore: new Date(this.notBeforeMs).toISOString(), senders: this.guard.size }
    if (this.previous === 'unreadable') this.opts.log.warn(facts, 'sync replay state loaded: the file could not be read; updates dated before start + --sync-max-skew are refused')
    else this.opts.log.info(facts, 'sync replay state loaded')
    try {
      // O_EXCL: a name someone put there since (a link included) is refused, not opened.
      this.fd ??= fs.openSync(this.opts.file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600)
    } catch (err) {
      throw new SyncStateError(this.opts.file, err)
    }
    this.save(false)
    this.timer = setInterval(() => {
      this.ceilingMs = Math.max(this.ceilingMs, this.now() + this.aheadMs, this.newestAcceptedMs + this.aheadMs)
      this.save(false)
    }, this.intervalMs)
    this.timer.unref()
  }

  /** Before a packet dated `sentAtMs` is accepted: a date past the saved ceiling waits for a new one on disk. */
  beforeAccept (sentAtMs: number): void {
    if (sentAtMs > this.newestAcceptedMs) this.newestAcceptedMs = sentAtMs
    if (sentAtMs <= this.ceilingMs) return
    this.ceilingMs = Math.max(this.now(), sentAtMs) + this.aheadMs
    this.save(false)
  }

  /** The final save (complete marks, clean), unless another process has taken the file over since. */
  close (): void {
    clearInterval(this.timer)
    const fd = this.fd
    if (fd === undefined) return
    if (this.ownsFile(fd)) this.save(true)
    else this.opts.log.warn({ file: this.opts.file }, 'sync replay state: another process has written the file since this one started; not overwriting it')
    this.fd = undefined
    fs.closeSync(fd)
  }

  private ownsFile (fd: number): boolean {
    try {
      const size = fs.fstatSync(fd).size
      const buffer = Buffer.alloc(Math.min(size, 1 << 20))
      fs.readSync(fd, buffer, 0, buffer.length, 0)
      return parseState(buffer.toString('utf8'))?.boot === this.boot
    } catch {
      return true // our own file, unreadable: writing it is the way to mend it
    }
  }

  private save (clean: boolean): void {
    const fd = this.fd
    if (fd === undefined) return
    const nowMs = this.now()
    const marks = this.guard.marks()
    const senders: SavedState['senders'] = {}
    // A sender last heard from longer ago than the session lifetime needs no mark: all it ever
    // sent is refused as stale now.
    for (const [sender, mark] of marks.senders) {
      if (mark.lastSentAtMs >= nowMs - this.opts.sessionLifetimeMs) senders[sender] = [mark.highest.toString(), mark.lastSentAtMs]
    }
    const state: SavedState = {
      format: FORMAT,
      version: VERSION,
      boot: this.boot,
      clean,
      savedAtMs: nowMs,
      floorMs: this.notBeforeMs,
      ceilingMs: this.ceilingMs,
      horizonMs: Number.isFinite(marks.horizonMs) ? marks.horizonMs : null,
      senders
    }
    const line = Buffer.from(JSON.stringify(state) + '\n')
    try {
      // The reader takes the first line only, so a longer old content is harmless until truncated.
      fs.writeSync(fd, line, 0, line.length, 0)
      fs.ftruncateSync(fd, line.length)
      if (this.failing) this.opts.log.info({ file: this.opts.file }, 'sync replay state written again')
      this.failing = false
    } catch (err) {
      if (!this.failing) this.opts.log.error({ err, file: this.opts.file }, 'sync replay state not written: after a restart, packets accepted since the last write could be accepted again')
      this.failing = true
    }
  }
}

/** The file's name in --state-dir: one per sync address (and per TLS address where nodes share it: multicast). */
export function replayStateFile (stateDir: string, listen: string, tlsAddress?: string): string {
  const key = [listen, ...(tlsAddress !== undefined ? [tlsAddress] : [])].join('-').replace(/[^A-Za-z0-9.-]/g, '_')
  return path.join(stateDir, `sync-replay-${key}.json`)
}

const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)

/** The state in the file's first line; undefined when it is not one (empty, torn, another format). */
export function parseState (text: string): SavedState | undefined {
  let value: unknown
  try { value = JSON.parse(text.split('\n', 1)[0] ?? '') } catch { return undefined }
  if (typeof value !== 'object' || value === null) return undefined
  const s = value as Partial<SavedState>
  if (s.format !== FORMAT || s.version !== VERSION || typeof s.boot !== 'string' || typeof s.clean !== 'boolean') return undefined
  if (!isTime(s.floorMs) || !isTime(s.ceilingMs) || !isTime(s.savedAtMs) || !(s.horizonMs === null || isTime(s.horizonMs))) return undefined
  if (typeof s.senders !== 'object' || s.senders === null) return undefined
  for (const [sender, mark] of Object.entries(s.senders)) {
    if (!/^[0-9a-f]{16}$/.test(sender) || !Array.isArray(mark) || typeof mark[0] !== 'string' || !/^\d{1,20}$/.test(mark[0]) || !isTime(mark[1])) return undefined
  }
  return s as SavedState
}

function marksOf (saved: SavedState): ReplayMarks {
  const senders = new Map<string, { highest: bigint; lastSentAtMs: number }>()
  for (const [sender, [highest, lastSentAtMs]] of Object.entries(saved.senders)) senders.set(sender, { highest: BigInt(highest), lastSentAtMs })
  return { senders, horizonMs: saved.horizonMs ?? -Infinity }
}
