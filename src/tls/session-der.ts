/**
 * Reads the protocol version out of a DER-encoded SSL_SESSION (OpenSSL's ASN.1 layout:
 * SEQUENCE { version INTEGER, sslVersion INTEGER, ... }) without a full ASN.1 parser. Used to
 * keep TLS 1.3 sessions out of the session-ID cache: 1.3 clients never resume by session ID.
 * Returns undefined for anything that does not look like that layout.
 */
export function sessionProtocolVersion (der: Buffer): number | undefined {
  if (der.length < 8 || der[0] !== 0x30) return undefined
  let offset = 1
  const lenByte = der[offset++] as number
  if (lenByte & 0x80) {
    const n = lenByte & 0x7f
    if (n === 0 || n > 3) return undefined
    offset += n
  }
  // version INTEGER (1 byte, value 1)
  if (der[offset] !== 0x02 || der[offset + 1] !== 0x01) return undefined
  offset += 3
  // sslVersion INTEGER (1-3 bytes)
  if (der[offset] !== 0x02) return undefined
  const n = der[offset + 1] as number
  if (n < 1 || n > 3 || offset + 2 + n > der.length) return undefined
  let version = 0
  for (let i = 0; i < n; i++) version = (version << 8) | (der[offset + 2 + i] as number)
  return version
}

export const TLS1_3_VERSION = 0x0304

/** One DER element at `offset`: its tag, where its content starts and ends; undefined when it does not fit. */
function element (der: Buffer, offset: number, end: number): { tag: number; start: number; end: number } | undefined {
  if (offset + 2 > end) return undefined
  const tag = der[offset] as number
  let length = der[offset + 1] as number
  let start = offset + 2
  if (length & 0x80) {
    const n = length & 0x7f
    if (n === 0 || n > 3 || start + n > end) return undefined
    length = 0
    for (let i = 0; i < n; i++) length = length * 256 + (der[start + i] as number)
    start += n
  }
  return start + length <= end ? { tag, start, end: start + length } : undefined
}

/** `[4] EXPLICIT`, OpenSSL's tag for session_id_context in SSL_SESSION_ASN1. */
const SESSION_ID_CONTEXT_TAG = 0xa4

/**
 * The session-ID context a DER SSL_SESSION was made under (empty when it has none), or
 * undefined for anything that does not look like that layout. OpenSSL resumes a session only
 * under the same context, so a session refused for another context is no bad session: the
 * node that made it is set up differently (--session-id-context, --client-verify, --client-ca).
 */
export function sessionIdContextOf (der: Buffer): Buffer | undefined {
  // A whole SSL_SESSION, opening with its two versions: garbage (an empty SEQUENCE, bytes after
  // it) has no context, so it is dropped as bad, not taken for a session made elsewhere.
  const session = element(der, 0, der.length)
  if (session === undefined || session.tag !== 0x30 || session.end !== der.length || sessionProtocolVersion(der) === undefined) return undefined
  for (let offset = session.start; offset < session.end;) {
    const field = element(der, offset, session.end)
    if (field === undefined) return undefined
    if (field.tag === SESSION_ID_CONTEXT_TAG) {
      const value = element(der, field.start, field.end)
      return value?.tag === 0x04 ? der.subarray(value.start, value.end) : undefined
    }
    offset = field.end
  }
  return Buffer.alloc(0)
}
