import type tls from 'node:tls'
import { encodeTlsTlvs, PP2_TYPE_CRC32C, type ProxyTlv, type TlsFacts } from '../proxy/proxy-tlv.js'
import type { ClientCertificate } from './client-auth.js'

export type TlvKind = 'alpn' | 'authority' | 'ssl' | 'crc32c'

/** Its value is written by encodeProxyV2 (the header's checksum): shared, never written to. */
const CRC32C_TLV: ProxyTlv = Object.freeze({ type: PP2_TYPE_CRC32C, value: Buffer.alloc(4) })

/**
 * Reads, once per connection after the handshake, what the configured TLVs say. `sniName`: the
 * name read from the ClientHello, checked to be a host name and lowercased (undefined when the
 * client sent none, or something that is no host name).
 */
export type TlvBuilder = (socket: tls.TLSSocket, client: ClientCertificate | undefined, sniName: string | undefined) => ProxyTlv[]

/**
 * The TLV builder for --proxy-tlv, decided when the worker starts: undefined when no TLV is
 * sent (PROXY v1 or none, or `--proxy-tlv none`), so those connections do no work for it.
 * ALPN and the SNI name are already on the socket (Node reads them when the handshake ends);
 * only the SSL TLV asks OpenSSL for the version and the cipher.
 */
export function tlvBuilder (kinds: ReadonlyArray<TlvKind | 'none'>, proxyProtocolOut: 'off' | 'v1' | 'v2'): TlvBuilder | undefined {
  if (proxyProtocolOut !== 'v2') return undefined
  const alpn = kinds.includes('alpn')
  const authority = kinds.includes('authority')
  const ssl = kinds.includes('ssl')
  const crc = kinds.includes('crc32c')
  if (!alpn && !authority && !ssl && !crc) return undefined
  return (socket, client, sniName) => {
    const facts: TlsFacts = {}
    if (alpn && typeof socket.alpnProtocol === 'string') facts.alpn = socket.alpnProtocol
    // The checked name, never OpenSSL's raw one (socket.servername): a client's SNI may hold
    // CR/LF or control bytes, which a backend routing or logging by this TLV would take as given.
    if (authority && sniName !== undefined) facts.authority = sniName.endsWith('.') ? sniName.slice(0, -1) : sniName
    if (ssl) {
      facts.ssl = { version: socket.getProtocol() ?? 'unknown', cipher: socket.getCipher().name }
      if (client !== undefined) facts.ssl.clientCertificate = client.commonName !== undefined ? { commonName: client.commonName, thisConnection: client.thisConnection } : { thisConnection: client.thisConnection }
    }
    const tlvs = encodeTlsTlvs(facts)
    if (crc) tlvs.push(CRC32C_TLV)
    return tlvs
  }
}

/** Protocols that are HTTP/1.x whatever a client negotiated: offering only these leaves the backend nothing to tell apart. */
const HTTP1 = new Set(['http/1.1', 'http/1.0'])

/**
 * What to say at start when --alpn offers a protocol the backend cannot learn was chosen (no
 * PROXY v2 ALPN TLV): each client speaks what it negotiated, or HTTP/1.1 without ALPN, and the
 * backend gets the bytes alone (an HTTP/1.1-only backend fed h2's preface and frames). Not
 * refused: a backend may speak both and tell them apart by the h2 preface.
 */
export function alpnBackendWarning (options: { alpn: readonly string[]; proxyProtocolOut: 'off' | 'v1' | 'v2'; proxyTlv: ReadonlyArray<TlvKind | 'none'> }): string | undefined {
  if (options.alpn.every((protocol) => HTTP1.has(protocol))) return undefined
  if (options.proxyProtocolOut === 'v2' && options.proxyTlv.includes('alpn')) return undefined
  const missing = options.proxyProtocolOut === 'off'
    ? 'no PROXY header goes to the backend (--proxy-protocol-out off)'
    : options.proxyProtocolOut === 'v1' ? '--proxy-protocol-out v1 carries no TLVs' : `--proxy-tlv ${options.proxyTlv.join(',')} leaves out the alpn TLV`
  const other = options.alpn.find((protocol) => !HTTP1.has(protocol)) as string
  return `--alpn ${options.alpn.join(',')}: ${missing}, so the backend cannot learn which protocol each client negotiated; a backend that speaks only HTTP/1.1 gets ${other} from clients that chose it (h2: its preface and binary frames); give --proxy-protocol-out v2 with alpn in --proxy-tlv (the default) to a backend that reads it, or offer only --alpn http/1.1`
}
