/**
 * The closed list of reasons a farm-sync datagram is dropped (v2 and stud/hitch formats).
 * Every decoder returns one of these instead of throwing, and the sync layer counts them
 * (one counter label per reason), so the list is fixed and exported as an array too.
 *
 *   REJECT_REASONS: readonly RejectReason[]    all reasons, in a stable order
 *   RejectReason                               the string literal union
 *   isRejectReason(value: unknown): value is RejectReason
 */

export const REJECT_REASONS = [
  'bad_magic',
  'bad_version',
  'unknown_key',
  'truncated',
  'oversized',
  'bad_length',
  'bad_tag',
  'bad_hmac',
  'bad_op',
  'bad_body',
  'stale',
  'future',
  'replay',
  'before_start',
  'unsolicited',
  'own',
  'tls13_session',
  'duplicate'
] as const

export type RejectReason = typeof REJECT_REASONS[number]

const reasonSet: ReadonlySet<string> = new Set(REJECT_REASONS)

export function isRejectReason (value: unknown): value is RejectReason {
  return typeof value === 'string' && reasonSet.has(value)
}
