import fs from 'node:fs'
import type { TicketKeySchedule } from '../tls/ticket-keys.js'
import { replaceKeyFile } from './key-file.js'
import type { HaproxyRuntimeApi } from './runtime-api.js'
import { expectedRing, HAPROXY_RING_SIZE, keyFileText, pushesNeeded, type ExpectedRing } from './tls-keys.js'

/**
 * Why keys were pushed: the epoch moved on (one key, on the ring this pusher left), or the ring
 * was not the one it left (HAProxy restarted from an old key file, someone else set keys).
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

  constructor (
    private readonly api: HaproxyRuntimeApi,
    readonly file: string,
    private readonly schedule: TicketKeySchedule,
    private readonly now: () => number = Date.now
  ) {}

  async check (): Promise<RingCheck> {
    const expected = expectedRing(this.schedule, this.now())
    const actual = await this.api.showTlsKeys(this.file)
    const needed = pushesNeeded(actual, expected.lines)
    if (needed === 0) {
      this.left = actual
      return { current: true, epoch: expected.epoch, pushed: 0, ...this.persist(expected) }
    }
    // By the count alone, an HAProxy restarted from a key file one rotation old would look rotated.
    const reason: PushReason = needed === 1 && this.left !== undefined && sameLines(actual, this.left) ? 'rotation' : 'repair'
    for (const line of expected.lines.slice(HAPROXY_RING_SIZE - needed)) await this.api.setTlsKey(this.file, line)
    const after = await this.api.showTlsKeys(this.file)
    if (pushesNeeded(after, expected.lines) !== 0) {
      this.left = undefined
      return { current: false, epoch: expected.epoch, pushed: needed, reason, problem: `the ticket key ring of ${this.file} still differs from the farm's after ${needed} key update(s): is another process setting keys?` }
    }
    this.left = after
    return { current: true, epoch: expected.epoch, pushed: needed, reason, ...this.persist(expected) }
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
