import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encodeProxyV2, parseProxyHeader } from '../../src/proxy/proxy-protocol.js'
import { alpnBackendWarning } from '../../src/tls/connection-tlvs.js'
import { decodeTlsTlvs, encodeTlsTlvs, PP2_CLIENT_CERT_CONN, PP2_CLIENT_CERT_SESS, PP2_CLIENT_SSL, PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_SSL } from '../../src/proxy/proxy-tlv.js'

const source = { address: '192.0.2.1', port: 40000 }
const destination = { address: '192.0.2.2', port: 443 }

test('ALPN, AUTHORITY and SSL TLVs cross a PROXY v2 header and decode back', () => {
  const tlvs = encodeTlsTlvs({ alpn: 'h2', authority: 'app.example', ssl: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', clientCertificate: { commonName: 'client-1', thisConnection: true } } })
  assert.deepEqual(tlvs.map((t) => t.type), [PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_SSL])
  const parsed = parseProxyHeader(encodeProxyV2(source, destination, tlvs), 'v2')
  assert.equal(parsed.status, 'ok')
  if (parsed.status !== 'ok') return
  assert.deepEqual(decodeTlsTlvs(parsed.header.tlvs), {
    alpn: 'h2',
    authority: 'app.example',
    ssl: { client: PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS, verify: 0, version: 'TLSv1.3', commonName: 'client-1', cipher: 'TLS_AES_128_GCM_SHA256' }
  })
})

test('the SSL TLV follows HAProxy\'s layout byte for byte', () => {
  const [ssl] = encodeTlsTlvs({ ssl: { version: 'TLSv1.2', cipher: 'AES' } })
  // client = SSL only, verify = 1 (no verified certificate), then VERSION and CIPHER sub-TLVs.
  const hex = (text: string): string => Buffer.from(text).toString('hex')
  assert.equal(ssl?.value.toString('hex'), '01' + '00000001' + '21' + '0007' + hex('TLSv1.2') + '23' + '0003' + hex('AES'))
})

test('a session resumed with a certificate says so without claiming this connection sent it', () => {
  const decoded = decodeTlsTlvs(encodeTlsTlvs({ ssl: { version: 'TLSv1.2', cipher: 'X', clientCertificate: { thisConnection: false } } }))
  assert.equal(decoded.ssl?.client, PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS)
  assert.equal(decoded.ssl?.verify, 0)
  assert.equal(decoded.ssl?.commonName, undefined)
})

test('decoding skips unknown TLVs and stops at a truncated sub-TLV instead of throwing', () => {
  const truncated = Buffer.from('0100000000' + '22ff00', 'hex')
  const decoded = decodeTlsTlvs([{ type: 0x04, value: Buffer.alloc(3) }, { type: PP2_TYPE_SSL, value: truncated }, { type: PP2_TYPE_SSL, value: Buffer.alloc(2) }])
  assert.deepEqual(decoded, { ssl: { client: 1, verify: 0 } })
})

test('--alpn offering more than HTTP/1.x without the PROXY v2 alpn TLV is warned about, naming why; with the TLV, or HTTP/1.x only, it is not', () => {
  const tlv = ['alpn', 'authority'] as const
  assert.match(alpnBackendWarning({ alpn: ['h2', 'http/1.1'], proxyProtocolOut: 'off', proxyTlv: [...tlv] }) ?? '',
    /^--alpn h2,http\/1\.1: no PROXY header goes to the backend \(--proxy-protocol-out off\), so the backend cannot learn which protocol each client negotiated; a backend that speaks only HTTP\/1\.1 gets h2 from clients that chose it/)
  assert.match(alpnBackendWarning({ alpn: ['h2'], proxyProtocolOut: 'v1', proxyTlv: [...tlv] }) ?? '', /--proxy-protocol-out v1 carries no TLVs/)
  assert.match(alpnBackendWarning({ alpn: ['http/1.1', 'spdy/3.1'], proxyProtocolOut: 'v2', proxyTlv: ['authority', 'ssl'] }) ?? '', /--proxy-tlv authority,ssl leaves out the alpn TLV.*gets spdy\/3\.1/)
  assert.match(alpnBackendWarning({ alpn: ['h2'], proxyProtocolOut: 'v2', proxyTlv: ['none'] }) ?? '', /--proxy-tlv none leaves out the alpn TLV/)
  assert.equal(alpnBackendWarning({ alpn: ['h2', 'http/1.1'], proxyProtocolOut: 'v2', proxyTlv: [...tlv] }), undefined)
  assert.equal(alpnBackendWarning({ alpn: ['http/1.1'], proxyProtocolOut: 'off', proxyTlv: [...tlv] }), undefined)
  assert.equal(alpnBackendWarning({ alpn: [], proxyProtocolOut: 'off', proxyTlv: [...tlv] }), undefined)
})
