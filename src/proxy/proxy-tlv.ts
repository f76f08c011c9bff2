/**
 * The TLS facts a terminator passes to the backend in PROXY v2 TLVs (HAProxy's
 * proxy-protocol.txt, section 2.2): the negotiated ALPN protocol, the SNI host name
 * (AUTHORITY), and the SSL TLV with the protocol version, the cipher and the client
 * certificate's CN, as HAProxy's send-proxy-v2-ssl-cn and hitch's proxy-tlv send them.
 * Pure encoding and decoding; the demo backend and tests decode what the workers encode.
 */

export const PP2_TYPE_ALPN = 0x01
export const PP2_TYPE_AUTHORITY = 0x02
/** The header's own checksum (4 bytes), checked by the parser (proxy-protocol.ts); not a TLS fact. */
export const PP2_TYPE_CRC32C = 0x03
export const PP2_TYPE_SSL = 0x20
export const PP2_SUBTYPE_SSL_VERSION = 0x21
export const PP2_SUBTYPE_SSL_CN = 0x22
export const PP2_SUBTYPE_SSL_CIPHER = 0x23

/** SSL TLV `client` bits: TLS was used; a certificate came in this connection; in its session. */
export const PP2_CLIENT_SSL = 0x01
export const PP2_CLIENT_CERT_CONN = 0x02
export const PP2_CLIENT_CERT_SESS = 0x04

export interface ProxyTlv { type: number; value: Buffer }

export interface TlsFacts {
  alpn?: string
  authority?: string
  ssl?: {
    version: string
    cipher: string
    /** Present when the client showed a certificate that was verified. */
    clientCertificate?: { commonName?: string; thisConnection: boolean }
  }
}

/** What a backend learns from the TLVs: `verify` is 0 only for a verified client certificate. */
export interface DecodedTlsFacts extends Omit<TlsFacts, 'ssl'> {
  ssl?: { client: number; verify: number; version?: string; cipher?: string; commonName?: string }
}

export function encodeTlsTlvs (facts: TlsFacts): ProxyTlv[] {
  const tlvs: ProxyTlv[] = []
  if (facts.alpn !== undefined) tlvs.push({ type: PP2_TYPE_ALPN, value: Buffer.from(facts.alpn, 'latin1') })
  if (facts.authority !== undefined) tlvs.push({ type: PP2_TYPE_AUTHORITY, value: Buffer.from(facts.authority, 'utf8') })
  if (facts.ssl !== undefined) {
    const cert = facts.ssl.clientCertificate
    const head = Buffer.alloc(5)
    head.writeUInt8(PP2_CLIENT_SSL | (cert !== undefined ? PP2_CLIENT_CERT_SESS | (cert.thisConnection ? PP2_CLIENT_CERT_CONN : 0) : 0), 0)
    // "zero if the client presented a certificate and it was successfully verified"
    head.writeUInt32BE(cert !== undefined ? 0 : 1, 1)
    const parts = [head, subTlv(PP2_SUBTYPE_SSL_VERSION, facts.ssl.version)]
    if (cert?.commonName !== undefined) parts.push(subTlv(PP2_SUBTYPE_SSL_CN, cert.commonName))
    parts.push(subTlv(PP2_SUBTYPE_SSL_CIPHER, facts.ssl.cipher))
    tlvs.push({ type: PP2_TYPE_SSL, value: Buffer.concat(parts) })
  }
  return tlvs
}

function subTlv (type: number, text: string): Buffer {
  const value = Buffer.from(text, 'utf8')
  const head = Buffer.alloc(3)
  head.writeUInt8(type, 0)
  head.writeUInt16BE(value.length, 1)
  return Buffer.concat([head, value])
}

/** The TLS TLVs among a header's TLVs; others are ignored, a malformed SSL TLV is skipped. */
export function decodeTlsTlvs (tlvs: ProxyTlv[]): DecodedTlsFacts {
  const facts: DecodedTlsFacts = {}
  for (const tlv of tlvs) {
    if (tlv.type === PP2_TYPE_ALPN) facts.alpn = tlv.value.toString('latin1')
    else if (tlv.type === PP2_TYPE_AUTHORITY) facts.authority = tlv.value.toString('utf8')
    else if (tlv.type === PP2_TYPE_SSL && tlv.value.length >= 5) {
      const ssl: NonNullable<DecodedTlsFacts['ssl']> = { client: tlv.value.readUInt8(0), verify: tlv.value.readUInt32BE(1) }
      let offset = 5
      while (offset + 3 <= tlv.value.length) {
        const type = tlv.value.readUInt8(offset)
        const end = offset + 3 + tlv.value.readUInt16BE(offset + 1)
        if (end > tlv.value.length) break
        const text = tlv.value.toString('utf8', offset + 3, end)
        if (type === PP2_SUBTYPE_SSL_VERSION) ssl.version = text
        else if (type === PP2_SUBTYPE_SSL_CN) ssl.commonName = text
        else if (type === PP2_SUBTYPE_SSL_CIPHER) ssl.cipher = text
        offset = end
      }
      facts.ssl = ssl
    }
  }
  return facts
}
