import assert from 'node:assert/strict'
import net from 'node:net'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { encodeProxyV2 } from '../../src/proxy/proxy-protocol.js'
import { PP2_TYPE_CRC32C } from '../../src/proxy/proxy-tlv.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { serverRow } from '../helpers/agent.js'
import { pollUntil, startHaproxy, TCP_DEFAULTS, type RunningHaproxy } from '../helpers/haproxy.js'
import { eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'

/**
 * A real HAProxy in front of a tlsfleet node with `send-proxy-v2 proxy-v2-options crc32c`: the
 * node checks the checksum of every header (its clients' and its health checks' LOCAL ones)
 * and serves them; a header whose checksum does not match is refused and counted. The node
 * adds its own CRC32C TLV going to the backend (`--proxy-tlv crc32c`), which the recording
 * backend's parser checks in turn.
 */

let haproxy: RunningHaproxy
let node: RunningNode
let backend: Awaited<ReturnType<typeof startRecordingBackend>>
let tlsPort: number
let frontPort: number

before(async () => {
  const dir = tempDir()
  const cert = makeCertificate(dir, 'node', ['localhost'])
  backend = await startRecordingBackend()
  let adminPort: number
  ;[tlsPort, frontPort, adminPort] = await freePorts(3) as [number, number, number]
  // The node first: a server whose first check fails starts DOWN in HAProxy.
  node = await startNode([
    '--workers', '1', '--listen', `127.0.0.1:${tlsPort}`, '--cert', cert, '--backend', `127.0.0.1:${backend.port}`,
    '--proxy-protocol-in', 'v2', '--proxy-from', '127.0.0.1', '--proxy-protocol-out', 'v2', '--proxy-tlv', 'alpn,authority,crc32c'
  ], { adminPort })
  haproxy = await startHaproxy(`${TCP_DEFAULTS}
frontend fe
  bind 127.0.0.1:${frontPort}
  default_backend be

backend be
  server n1 127.0.0.1:${tlsPort} send-proxy-v2 proxy-v2-options crc32c check inter 300
`, { ports: 0 })
  await pollUntil('be/n1 UP in HAProxy', async () => (await serverRow(haproxy.api, 'be', 'n1')).status === 'UP' ? true : undefined)
})

after(async () => {
  await haproxy?.stop()
  await node?.stop()
  await backend?.close()
})

const proxyErrors = async (reason?: string): Promise<number> => await node.metric('tlsfleet_proxy_protocol_errors_total', reason === undefined ? {} : { reason })

test('HAProxy\'s headers with a CRC32C TLV are accepted: a TLS client through HAProxy reaches the backend as itself', async () => {
  const socket = tls.connect({ host: '127.0.0.1', port: frontPort, servername: 'localhost', rejectUnauthorized: false })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) }).catch((err: Error) => { throw new Error(`${err.message}; ${node.diagnosis()}\nhaproxy: ${haproxy.output()}`) })
  const clientPort = socket.localPort
  let reply = ''
  socket.on('data', (d: Buffer) => { reply += d.toString() })
  socket.write('through haproxy')
  await eventually(() => reply === 'echo:through haproxy', 5000, `the backend's echo (got ${JSON.stringify(reply)}); ${node.diagnosis()}\n${haproxy.output()}`)
  socket.destroy()

  const conn = backend.connections.find((c) => c.received.toString() === 'through haproxy')
  assert.ok(conn?.proxy !== undefined, 'the backend got a PROXY header')
  // The client HAProxy named in its header, so the node believed (and checked) that header.
  assert.deepEqual(conn.proxy.source, { address: '127.0.0.1', port: clientPort })
  assert.deepEqual(conn.proxy.destination, { address: '127.0.0.1', port: frontPort })
  // The node's own header carries a CRC32C, which the backend's parser has just verified.
  assert.deepEqual(conn.proxy.tlvs.filter((t) => t.type === PP2_TYPE_CRC32C).map((t) => t.value.length), [4])
  assert.equal(conn.proxy.tlvs.find((t) => t.type === 0x02)?.value.toString(), 'localhost')

  // HAProxy's checks (a LOCAL header with its CRC32C, then close) are checks, not errors.
  await eventually(async () => await node.metric('tlsfleet_connections_closed_before_tls_total', { header: 'local' }) >= 2, 5000, `HAProxy's checks counted as LOCAL headers; ${node.diagnosis()}`)
  assert.equal(await proxyErrors(), 0, node.diagnosis())
  // Reset before the worker accepted them or not, none is a handshake failure (--proxy-from on).
  assert.equal(await node.metric('tlsfleet_handshake_failures_total'), 0, node.diagnosis())
})

/** Writes `header` to the node directly and waits for the node to close. */
async function sendHeader (header: Buffer): Promise<void> {
  const raw = net.connect(tlsPort, '127.0.0.1')
  raw.on('error', () => {})
  await new Promise<void>((resolve) => raw.once('connect', resolve))
  raw.write(header)
  raw.resume()
  await new Promise<void>((resolve) => raw.once('close', () => resolve()))
}

test('a header whose CRC32C does not match is refused and counted as bad_crc32c; one of the wrong length as bad_tlv', async () => {
  const before = { crc: await proxyErrors('bad_crc32c'), tlv: await proxyErrors('bad_tlv'), all: await proxyErrors() }
  const good = encodeProxyV2({ address: '192.0.2.9', port: 40000 }, { address: '127.0.0.1', port: tlsPort }, [{ type: PP2_TYPE_CRC32C, value: Buffer.alloc(4) }])
  const forged = Buffer.from(good)
  forged[19] = 10 // the source address, rewritten after the checksum was computed
  await sendHeader(forged)
  const wrongLength = Buffer.concat([good.subarray(0, 14), Buffer.from([0x00, 12 + 3 + 2]), good.subarray(16, 28), Buffer.from([PP2_TYPE_CRC32C, 0x00, 0x02, 0x00, 0x00])])
  await sendHeader(wrongLength)
  await eventually(async () => await proxyErrors('bad_crc32c') === before.crc + 1 && await proxyErrors('bad_tlv') === before.tlv + 1, 5000, `both refusals counted; ${node.diagnosis()}`)
  assert.equal(await proxyErrors(), before.all + 2)
  // The node still serves HAProxy's clients.
  const socket = tls.connect({ host: '127.0.0.1', port: frontPort, servername: 'localhost', rejectUnauthorized: false })
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  socket.destroy()
})
