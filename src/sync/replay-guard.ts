/**
 * Per-sender replay protection for sync v2 (a DTLS/IPsec style sliding window).
 *
 *   class ReplayGuard {
 *     constructor (options?: { windowBits?: number /* default 1024, multiple of 32 *\/;
 *                              maxSenders?: number /* default 1024 *\/ })
 *     check (sender: Buffer, sequence: bigint, sentAtMs: number): boolean   // true = not seen
 *     commit (sender: Buffer, sequence: bigint, sentAtMs: number): void     // record as seen
 *     readonly size: number          // senders tracked
 *     readonly horizonMs: number     // see "eviction" below
 *     marks (): ReplayMarks          // what a restart needs (replay-state.ts saves it)
 *     restore (marks: ReplayMarks)   // start from saved marks: all at or below each highest is seen
 *   }
 *
 * Call check() only after the packet's tag verified (a forger cannot poison the window), and
 * commit() only when the packet is accepted. check() never changes state; decoding is
 * synchronous, so nothing runs between check() and commit().
 *
 * Window: per sender, the highest accepted sequence and a bitmap of the `windowBits` sequences
 * at and below it. A sequence above the highest is new; one within the window is new unless its
 * bit is set; one below the window is treated as a replay (cannot tell, so refuse).
 *
 * Eviction: at most `maxSenders` senders are tracked (least recently accepted goes first). An
 * evicted sender's window is gone, so instead the guard keeps `horizonMs`, the newest sentAt
 * ever accepted from any evicted sender. A packet from a sender that is not tracked is accepted
 * only if its (authenticated) sentAt is after that horizon: every packet an evicted sender sent
 * up to its last accepted one is refused, so eviction never reopens a replay. The cost: after
 * evictions, the first packets of a new or evicted sender whose clock is behind the horizon are
 * dropped until its clock passes it. Evictions only happen with more than `maxSenders`
 * authenticated senders, so a normal farm never pays it. Packets older than the session lifetime
 * are refused as stale before they get here, which bounds what a replay could ever bring back.
 */

interface SenderWindow {
  highest: bigint
  /** bit (seq mod windowBits) set = seen; covers highest - windowBits + 1 .. highest */
  bits: Uint32Array
  lastSentAtMs: number
}

/** Per sender, the highest sequence and newest sentAt accepted; and the eviction horizon. */
export interface ReplayMarks {
  senders: Map<string, { highest: bigint; lastSentAtMs: number }>
  horizonMs: number
}

export interface ReplayGuardOptions {
  windowBits?: number
  maxSenders?: number
}

export class ReplayGuard {
  private readonly senders = new Map<string, SenderWindow>()
  private readonly windowBits: number
  private readonly window: bigint
  private readonly maxSenders: number
  private horizon = -Infinity
  /** The sender last moved to the end of `senders` (the most recently accepted). */
  private newest: string | undefined

  constructor (options: ReplayGuardOptions = {}) {
    const windowBits = options.windowBits ?? 1024
    const maxSenders = options.maxSenders ?? 1024
    if (!Number.isInteger(windowBits) || windowBits < 32 || windowBits % 32 !== 0 || windowBits > 65536) {
      throw new Error(`replay guard: windowBits must be a multiple of 32 from 32 to 65536, got ${windowBits}`)
    }
    if (!Number.isInteger(maxSenders) || maxSenders < 1) {
      throw new Error(`replay guard: maxSenders must be a positive integer, got ${maxSenders}`)
    }
    this.windowBits = windowBits
    this.window = BigInt(windowBits)
    this.maxSenders = maxSenders
  }

  get size (): number { return this.senders.size }

  get horizonMs (): number { return this.horizon }

  /** `sender`: the node id, or its hex form (what decodeV2 passes, so it is made once per packet). */
  check (sender: Buffer | string, sequence: bigint, sentAtMs: number): boolean {
    const state = this.senders.get(typeof sender === 'string' ? sender : sender.toString('hex'))
    if (state === undefined) return sentAtMs > this.horizon
    if (sequence > state.highest) return true
    if (state.highest - sequence >= this.window) return false
    return !hasBit(state.bits, this.index(sequence))
  }

  commit (sender: Buffer | string, sequence: bigint, sentAtMs: number): void {
    const key = typeof sender === 'string' ? sender : sender.toString('hex')
    let state = this.senders.get(key)
    if (state === undefined) {
      state = { highest: sequence, bits: new Uint32Array(this.windowBits / 32), lastSentAtMs: sentAtMs }
      this.senders.set(key, state)
      this.newest = key
    } else {
      if (sequence > state.highest) this.advance(state, sequence)
      state.lastSentAtMs = Math.max(state.lastSentAtMs, sentAtMs)
      // Map order is the LRU order: move the sender to the end, unless it is there already (a
      // batch, or a busy peer, is one packet after another from the same sender).
      if (key !== this.newest) {
        this.senders.delete(key)
        this.senders.set(key, state)
        this.newest = key
      }
    }
    setBit(state.bits, this.index(sequence))
    if (this.senders.size > this.maxSenders) this.evictBeyondLimit()
  }

  marks (): ReplayMarks {
    const senders = new Map<string, { highest: bigint; lastSentAtMs: number }>()
    for (const [sender, state] of this.senders) senders.set(sender, { highest: state.highest, lastSentAtMs: state.lastSentAtMs })
    return { senders, horizonMs: this.horizon }
  }

  /**
   * Start from marks saved by an earlier process: every sequence at or below a sender's highest
   * counts as seen (the bits of its window are lost, so refusing them all is the safe side), and
   * the horizon stays. Beyond `maxSenders`, the senders heard from longest ago go to the horizon.
   */
  restore (marks: ReplayMarks): void {
    this.horizon = Math.max(this.horizon, marks.horizonMs)
    const byAge = [...marks.senders].sort((a, b) => a[1].lastSentAtMs - b[1].lastSentAtMs)
    for (const [sender, mark] of byAge) {
      const current = this.senders.get(sender)
      const highest = current !== undefined && current.highest > mark.highest ? current.highest : mark.highest
      this.senders.delete(sender)
      this.senders.set(sender, { highest, bits: new Uint32Array(this.windowBits / 32).fill(0xffffffff), lastSentAtMs: Math.max(mark.lastSentAtMs, current?.lastSentAtMs ?? -Infinity) })
      this.newest = sender
    }
    this.evictBeyondLimit()
  }

  private evictBeyondLimit (): void {
    while (this.senders.size > this.maxSenders) {
      const oldest = this.senders.entries().next().value
      if (oldest === undefined) break
      this.senders.delete(oldest[0])
      this.horizon = Math.max(this.horizon, oldest[1].lastSentAtMs)
    }
  }

  private advance (state: SenderWindow, sequence: bigint): void {
    const distance = sequence - state.highest
    if (distance >= this.window) {
      state.bits.fill(0)
    } else {
      // Clear the slots of the sequences we skip over (they are new, not seen).
      // Slots of highest+1 .. sequence, as numbers: distance < window, so they wrap at most once.
      const first = this.index(state.highest + 1n)
      const count = Number(distance)
      for (let i = 0; i < count; i++) clearBit(state.bits, (first + i) % this.windowBits)
    }
    state.highest = sequence
  }

  /** A sequence's slot in the window's bitmap: word index >>> 5, bit index & 31. */
  private index (sequence: bigint): number {
    return Number(sequence % this.window)
  }
}

// A slot of the window's bitmap by its index (a number: the BigInt modulo is taken once, by index()).
function hasBit (bits: Uint32Array, index: number): boolean {
  return ((bits[index >>> 5] as number) & (1 << (index & 31))) !== 0
}

function setBit (bits: Uint32Array, index: number): void {
  bits[index >>> 5] = (bits[index >>> 5] as number) | (1 << (index & 31))
}

function clearBit (bits: Uint32Array, index: number): void {
  bits[index >>> 5] = (bits[index >>> 5] as number) & ~(1 << (index & 31))
}
