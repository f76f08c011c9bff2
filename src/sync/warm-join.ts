/** Cookies echoed in one warm join, at most (one per responder). */
export const MAX_JOIN_ECHOES = 64

/**
 * How long a warm join waits, once every responder so far has sent its last chunk, for one
 * more to answer (multicast, where the group's size is unknown, or a unicast peer that is down
 * or slow): a peer's challenge comes within a round trip of the request, so this is long.
 */
export const JOIN_SETTLE_MS = 250

/** What the join does after a chunk or a challenge. */
export type JoinStep = 'wait' | 'settle' | 'finish'

/**
 * One warm join's progress: which responders it echoed a cookie to, and which of them have
 * sent their last chunk. It ends when every responder has, and either every unicast peer
 * responded or no new one came within JOIN_SETTLE_MS — not at the first last chunk: an empty
 * peer (just restarted itself) answers fastest, and the full snapshot of a slower one would
 * then be refused as unsolicited, leaving the node cold.
 */
export class WarmJoin {
  private readonly echoed = new Set<string>()
  private readonly done = new Set<string>()
  sessions = 0

  /** `expected`: how many peers can answer (the unicast peer list); undefined for multicast. */
  constructor (readonly requestId: number, private readonly expected: number | undefined) {}

  get responders (): number { return this.echoed.size }

  /** A responder's challenge: true when it is to be echoed (new, and within the bound). */
  challenged (responder: string): boolean {
    if (this.echoed.has(responder) || this.echoed.size >= MAX_JOIN_ECHOES) return false
    this.echoed.add(responder)
    return true
  }

  /** A chunk from `responder` with `entries` sessions: what to do next. */
  chunk (responder: string, entries: number, last: boolean): JoinStep {
    this.sessions += entries
    if (!last) return 'wait'
    this.done.add(responder)
    return this.step()
  }

  /** Whether everyone who answered is done: at once when every expected peer has, else after the settle time. */
  step (): JoinStep {
    for (const responder of this.echoed) if (!this.done.has(responder)) return 'wait'
    if (this.done.size === 0) return 'wait'
    return this.expected !== undefined && this.done.size >= this.expected ? 'finish' : 'settle'
  }
}
