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
