/**
 * The line our agent answers to HAProxy's `agent-check`. HAProxy reads one line up to the
 * first CR/LF, splits it into words (space, tab or comma) and applies, whatever their order:
 * admin state, weight, maxconn, then health. `#` starts a free-text reason that runs to the
 * end of the line (commas included) and is shown only together with a health word.
 */

export type AdminState = 'ready' | 'drain' | 'maint'
export type Health = 'up' | 'down'

export interface AgentReply {
  admin: AdminState
  health: Health
  /** Percent of the server's *initial* weight (declare servers with `weight 100`). */
  weightPercent: number
  /** Per-server connection limit, 0 = unlimited. Omitted = leave HAProxy's value alone. */
  maxconn?: number
  /** Shown in HAProxy's stats page/logs as the agent description. */
  reason?: string
}

/**
 * Longer reasons are cut: HAProxy keeps the description in a small buffer anyway. Callers with
 * long causes give the agent a short reason of their own (TerminatorHealth.agentReason).
 */
const MAX_REASON = 200
const ELLIPSIS = '...'

/**
 * Make a reason safe for one agent line: no CR/LF (would end the line), no control bytes; one
 * over MAX_REASON is cut at a word boundary and ends with `...`, so it does not read whole.
 */
export function sanitizeReason (reason: string): string {
  // eslint-disable-next-line no-control-regex
  const text = reason.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').replace(/\s+/g, ' ').trim()
  if (text.length <= MAX_REASON) return text
  const room = text.slice(0, MAX_REASON - ELLIPSIS.length + 1)
  const space = room.lastIndexOf(' ')
  // One word longer than the line (a path?) is cut where the room ends.
  const kept = space > MAX_REASON / 2 ? room.slice(0, space) : room.slice(0, -1)
  return kept.replace(/[\s,;:]+$/, '') + ELLIPSIS
}

/**
 * Format a complete reply line, e.g. `ready up 80% maxconn:500\n`, `drain up 100%\n`,
 * `ready down 100% #no live worker\n`.
 *
 * - The health word is always sent: HAProxy 3.3 starts agent health at 0, so a reply without
 *   `up` would leave a fresh server down there; and the reason is only shown with it.
 * - The weight is always sent as `NN%` (never `weight:N`, which needs HAProxy 3.1+), an
 *   integer clamped to 0..100, so each reply restores the whole state on its own.
 * - `0%` while `ready up` keeps the server UP but gives it no new load-balanced traffic
 *   (stick-table matches still reach it). We pass it through because the caller may mean it,
 *   but the capacity estimator never produces it; to take a node out, say `drain`.
 */
export function formatAgentReply (reply: AgentReply): string {
  const { admin, health, weightPercent, maxconn, reason } = reply
  if (admin !== 'ready' && admin !== 'drain' && admin !== 'maint') throw new Error(`invalid agent admin state ${JSON.stringify(admin)}: expected ready, drain or maint`)
  if (health !== 'up' && health !== 'down') throw new Error(`invalid agent health ${JSON.stringify(health)}: expected up or down`)
  if (typeof weightPercent !== 'number' || Number.isNaN(weightPercent)) throw new Error(`invalid agent weight percent ${String(weightPercent)}: expected a number`)
  const weight = Math.min(100, Math.max(0, Math.round(weightPercent)))
  const words = [admin, health, `${weight}%`]
  if (maxconn !== undefined) {
    if (!Number.isSafeInteger(maxconn) || maxconn < 0) throw new Error(`invalid agent maxconn ${maxconn}: expected a non-negative integer (0 = unlimited)`)
    words.push(`maxconn:${maxconn}`)
  }
  if (reason !== undefined) {
    const text = sanitizeReason(reason)
    if (text !== '') words.push(`#${text}`)
  }
  return `${words.join(' ')}\n`
}
