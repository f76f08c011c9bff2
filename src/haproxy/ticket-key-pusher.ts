import fs from 'node:fs'
import type { TicketKeySchedule } from '../tls/ticket-keys.js'
import { replaceKeyFile } from './key-file.js'
import type { HaproxyRuntimeApi } from './runtime-api.js'
import { expectedRing, HAPROXY_RING_SIZE, haproxyKeyLine, keyFileText, pushesNeeded, type ExpectedRing } from './tls-keys.js'

/**
 * Why keys were pushed. `rotation`: one key, because the farm's epoch moved on, onto a ring that
 * was the farm's until then: the ring this pusher left in that HAProxy process, or the ring a
 * new process (restart, reload) loaded from its key file while that ring was still the farm's
 * (it started before the rotation, by `show info`'s Start_time_sec). `repair`: any other push:
 * HAProxy held a ring that was not the farm's when it got it (it started after a rotation from
 * the file written before, or from an older file; someone else set keys), or more than one key
 * was missing.
 */
export type PushReason = 'rotation' | 'repair'

export interface RingCheck {
  /** The ring is the farm's ring of this instant (after any pushes). */
  current: boolean
  /** Epoch of the encrypting key the ring should hold. */
  epoch: number
  /** Keys pushed by this check, and why. */
  pushed: number
  reason?: PushReason
  /** When not current: what is wrong (never key material). */
  problem?: string
  /** The key file was rewritten with the ring by this check. */
  fileWritten?: boolean
  /** The key file could not be read or rewritten: why (a path and an errno, never keys). */
  fileProblem?: string
}

/**
 * Keeps a local HAProxy's ticket key ring equal to the farm's: [E-1, E, E+1] for the current
 * epoch E of the farm schedule (src/haproxy/tls-keys.ts). Every node of the farm computes the
 * same ring from the farm secret and the clock, so the rings move in lockstep with no
 * coordinator. `check` compares `show tls-keys FILE` with the expected ring and pushes with
 * `set ssl tls-key` only what is missing: one key at a rotation, all three after HAProxy came
 * back with an old key file. Keys appear in nothing it returns, throws or logs.
 *
 * Whenever the ring is current, the key file holds it too (rewritten after a rotation or a
 * repair): an HAProxy reload (`-sf`, a master-worker reload) starts from the file, and a stale
 * file would have it issue tickets no other node resumes until the next check repairs it.
 */
export class TicketKeyPusher {
  /** The ring as the last check left it current. */
  private left: readonly string[] | undefined
  /** The key file's text as last written or found: not read again until the ring moves. */
  private written: string | undefined

  /** The sending secret before a SIGHUP changed it, and the epoch of the change (see setSchedule). */
  private outgoing?: { schedule: TicketKeySchedule; epoch: number }

  constructor (
    private readonly api: HaproxyRuntimeApi,
    readonly file: string,
    private schedule: TicketKeySchedule,
    private readonly now: () => number = Date.now
  ) {}

  /**
   * SIGHUP made another farm secret the sending one: the next check pushes its ring. When the
   * old secret stays accepted (`outgoing`), the ring of the epoch of the change keeps the old
   * secret's current key in the oldest slot (HAProxy holds 3 keys): tickets it issued this epoch
   * still resume until the next rotation, as the workers' tickets do for their whole lifetime.
   */
  setSchedule (schedule: TicketKeySchedule, outgoing?: TicketKeySchedule): void {
    this.schedule = schedule
    this.outgoing = outgoing === undefined ? undefined : { schedule: outgoing, epoch: Math.max(1, schedule.epochAt(this.now())) }
  }

  /** The farm's ring at `nowMs`, with the outgoing secret's key during the epoch of a change. */
  private expected (nowMs: number): ExpectedRing {
    const ring = expectedRing(this.schedule, nowMs)
    const outgoing = this.outgoing
    if (outgoing !== undefined && ring.epoch === outgoing.epoch) {
      return { epoch: ring.epoch, lines: [haproxyKeyLine(outgoing.schedule.generation(ring.epoch).keys), ...ring.lines.slice(1)] }
    }
    return ring
  }

  /** `processStartSec`: the HAProxy process's Start_time_sec (`show info`), when known. */
  async check (processStartSec?: number): Promise<RingCheck> {
    const expected = this.expected(this.now())
    const actual = await this.api.showTlsKeys(this.file)
    const needed = pushesNeeded(actual, expected.lines)
    if (needed === 0) {
      this.left = actual
      return { current: true, epoch: expected.epoch, pushed: 0, ...this.persist(expected) }
    }
    // By the count alone, an HAProxy restarted from a key file one rotation old would look rotated.
    const rotated = needed === 1 && ((this.left !== undefined && sameLines(actual, this.left)) || this.loadedCurrent(actual, expected.epoch, processStartSec))
    const reason: PushReason = rotated ? 'rotation' : 'repair'
    for (const line of expected.lines.slice(HAPROXY_RING_SIZE - needed)) await this.api.setTlsKey(this.file, line)
    const after = await this.api.showTlsKeys(this.file)
    if (pushesNeeded(after, expected.lines) !== 0) {
      this.left = undefined
      return { current: false, epoch: expected.epoch, pushed: needed, reason, problem: `the ticket key ring of ${this.file} still differs from the farm's after ${needed} key update(s): is another process setting keys?` }
    }
    this.left = after
    return { current: true, epoch: expected.epoch, pushed: needed, reason, ...this.persist(expected) }
  }

  /**
   * A process this pusher left no ring in (new, or not read since): it holds the farm's ring of
   * the epoch it started in, and that epoch is the one before `epoch`. Start_time_sec is whole
   * seconds, as rotation boundaries are, so it tells which side of the boundary it started on.
   */
  private loadedCurrent (actual: readonly string[], epoch: number, processStartSec: number | undefined): boolean {
    if (processStartSec === undefined) return false
    const atStart = this.expected(processStartSec * 1000)
    return atStart.epoch === epoch - 1 && sameLines(actual, atStart.lines)
  }

  /** Make the key file hold `ring` (the ring HAProxy holds now). */
  private persist (ring: ExpectedRing): Pick<RingCheck, 'fileWritten' | 'fileProblem'> {
    const text = keyFileText(ring)
    if (text === this.written) return {}
    let onDisk: string | undefined
    try { onDisk = fs.readFileSync(this.file, 'utf8') } catch { /* unreadable or missing: rewrite it */ }
    if (onDisk === text) { this.written = text; return {} }
    try {
      replaceKeyFile(this.file, text)
    } catch (err) {
      return { fileProblem: `cannot rewrite ${this.file} with the ring: ${(err as Error).message}` }
    }
    this.written = text
    return { fileWritten: true }
  }

  /**
   * The ring left behind no longer tells anything: HAProxy went away or a new process answers.
   * A new process loads its key file, which may be the very ring left (no rotation since it was
   * written) while the epoch moved on during the downtime: by ring alone that looks rotated.
   */
  forget (): void {
    this.left = undefined
    // Checked once more for the new process (someone may have written the file for it).
    this.written = undefined
  }

  /** Milliseconds until the farm's next rotation (when `check` has a key to push). */
  msUntilRotation (): number { return this.schedule.msUntilNextRotation() }
}

function sameLines (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((line, i) => line === b[i])
}
