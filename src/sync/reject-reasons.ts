/**
 * The closed list of reasons a farm-sync datagram is dropped (v2 and stud/hitch formats).
 * Every decoder returns one of these instead of throwing, and the sync layer counts them
 * (one counter label per reason), so the list is fixed and exported as an array too.
 *
 *   REJECT_REASONS: readonly RejectReason[]    all reasons, in a stable order
 *   RejectReason                               the string literal union
 *   REJECT_REASON_HELP: Record<RejectReason, string>   one line per reason (metrics help, docs)
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
  'own',
  'tls13_session'
] as const

export type RejectReason = typeof REJECT_REASONS[number]

export const REJECT_REASON_HELP: Readonly<Record<RejectReason, string>> = {
  bad_magic: 'v2: the first two bytes are not the tlsfleet magic',
  bad_version: 'v2: unsupported format version',
  unknown_key: 'v2: the key id is not in the local key ring',
  truncated: 'v2: shorter than its header, tag or declared body length',
  oversized: 'v2: longer than the size limit for its operation',
  bad_length: 'v2: longer than its declared body length; stud: datagram length outside 57..568 bytes',
  bad_tag: 'v2: AES-GCM authentication failed (forged, corrupted or wrong farm secret)',
  bad_hmac: 'stud: HMAC-SHA1 mismatch (forged, corrupted or different private key)',
  bad_op: 'v2: unknown operation code',
  bad_body: 'v2: authenticated body does not parse (lengths, counts, reserved bits)',
  stale: 'sent or session created longer ago than the session lifetime',
  future: 'sent or session created further in the future than the allowed clock skew',
  replay: 'v2: sequence number already accepted from that sender (or too old for its window)',
  own: 'v2: our own node id (multicast loopback); stud: a session ID we just sent',
  tls13_session: 'stud: a TLS 1.3 session (hitch shares them), which can never resume by session ID'
}

const reasonSet: ReadonlySet<string> = new Set(REJECT_REASONS)

export function isRejectReason (value: unknown): value is RejectReason {
  return typeof value === 'string' && reasonSet.has(value)
}
