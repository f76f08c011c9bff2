import type { RejectReason } from './reject-reasons.js'
import type { RefusalDetail } from './wire-v2.js'

/** What this node holds and allows: the other side of a refused peer's mistake. */
export interface RefusalContext {
  /** The farm key ids this node opens (v2); empty for stud. */
  keyIds: readonly number[]
  maxSkewSeconds: number
  sessionLifetimeSeconds: number
}

/**
 * Refusals that say nothing lasting about the sender: our own echo, a late answer to a warm join
 * that ended, the second copy of a packet a dual-stack peer sent to both our addresses, and
 * `before_start`, which a peer's updates meet for a few seconds after this node crashed or when
 * its clock is a little behind, and which ends by itself.
 */
const UNREMARKABLE: ReadonlySet<RejectReason> = new Set(['own', 'unsolicited', 'duplicate', 'before_start'])

/** Whether a sender with nothing accepted is worth a warning for this reason. */
export function warnsAbout (reason: RejectReason): boolean {
  return !UNREMARKABLE.has(reason)
}

/**
 * The warning for a sender whose every packet so far was refused, in an operator's words: what
 * is wrong and where to look (the key ids, the clock offset), e.g. "sync packets from
 * 127.0.0.1:47904 are all refused (unknown_key: sealed with key id 206, this node holds 52): is
 * its --sync-secret-file the farm's?".
 */
export function refusalWarning (from: string, reason: RejectReason, detail: RefusalDetail, ctx: RefusalContext): string {
  return `sync packets from ${from} are all refused (${reason}${why(reason, detail, ctx)}`
}

/** The rest of the line after the reason, its closing parenthesis included. */
function why (reason: RejectReason, detail: RefusalDetail, ctx: RefusalContext): string {
  const seconds = detail.offsetMs !== undefined ? Math.round(Math.abs(detail.offsetMs) / 1000) : undefined
  switch (reason) {
    case 'unknown_key': {
      const theirs = detail.keyId !== undefined ? `sealed with key id ${detail.keyId}` : 'sealed with a key'
      const ours = ctx.keyIds.length > 0 ? `this node holds ${ctx.keyIds.join(', ')}` : 'this node holds no other'
      return `: ${theirs}, ${ours}): is its --sync-secret-file the farm's?`
    }
    case 'bad_tag':
      return ': its key id is ours but the packets do not open): another farm\'s secret with the same key id, or damaged or forged packets'
    case 'future':
      return `: dated ${seconds ?? '?'} s ahead of this clock (--sync-max-skew ${ctx.maxSkewSeconds} s)): check NTP on both nodes`
    case 'stale':
      return `: dated ${seconds ?? '?'} s behind this clock, more than the ${ctx.sessionLifetimeSeconds} s session lifetime): check NTP on both nodes`
    case 'replay':
      return ': sequence numbers this node has seen): a replayed capture, another node with the same --node-id, or a node restarted with its clock behind its previous start and without its --state-dir'
    case 'bad_magic':
    case 'bad_version':
      return ': not a sync packet this node reads): does it run another --sync-format or another program on this port?'
    case 'tls13_session':
      return ': TLS 1.3 sessions, which never resume by session ID): nothing to share with this node in the stud format'
    default:
      return '): malformed for this node: does it run the same --sync-format and a compatible tlsfleet?'
  }
}

/** At most one line per sender and reason per this long. */
export const REFUSAL_WARN_INTERVAL_MS = 10 * 60_000

/** At most this many refusal lines per interval for all senders together (many spoofed sources). */
export const REFUSAL_WARNS_PER_INTERVAL = 16

/**
 * The log-volume bound: one line per sender and reason per interval (the caller keeps when it
 * last warned, on the sender's bounded row), and few lines per interval in total.
 */
export class RefusalWarnings {
  private windowStartMs = -Infinity
  private inWindow = 0

  /** Whether to log now for a row that last warned about this reason at `lastMs`. */
  due (lastMs: number | undefined, nowMs: number): 'warn' | 'last' | 'quiet' {
    if (lastMs !== undefined && nowMs - lastMs < REFUSAL_WARN_INTERVAL_MS) return 'quiet'
    if (nowMs - this.windowStartMs >= REFUSAL_WARN_INTERVAL_MS) {
      this.windowStartMs = nowMs
      this.inWindow = 0
    }
    if (this.inWindow > REFUSAL_WARNS_PER_INTERVAL) return 'quiet'
    this.inWindow++
    return this.inWindow > REFUSAL_WARNS_PER_INTERVAL ? 'last' : 'warn'
  }
}
