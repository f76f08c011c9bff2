import assert from 'node:assert/strict'
import net from 'node:net'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { decodeTlsTlvs } from '../../src/proxy/proxy-tlv.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { capturedClientHello } from '../helpers/client-hello.js'
import { eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'

let node: RunningNode
let port: number
let backend: Awaited<ReturnType<typeof startRecordingBackend>>

before(async () => {
  const dir = tempDir()
  const cert = makeCertificate(dir, 'node', ['localhost'])
  backend = await startRecordingBackend()
  let admin: number
  ;[port, admin] = await freePorts(2) as [number, number]
  node = await startNode([
    '--workers', '1', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`, '--cert', cert,
    '--proxy-protocol-in', 'auto', '--proxy-protocol-out', 'v2', '--handshake-timeout', '1'
  ], { adminPort: admin })
})

after(async () => {
  await node?.stop()
  await backend?.close()
})

/** Open a TCP connection, optionally write a PROXY header, then run TLS over it. */
async function connect (header?: string | Buffer, servername = 'localhost'): Promise<tls.TLSSocket> {
  const raw = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { raw.once('connect', resolve); raw.once('error', reject) })
  if (header !== undefined) raw.write(header)
  // allowHalfOpen is passed through to the TLSSocket (not in @types/node's ConnectionOptions).
  const socket = tls.connect({ socket: raw, rejectUnauthorized: false, servername, allowHalfOpen: true } as tls.ConnectionOptions)
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  return socket
}

async function readAll (socket: tls.TLSSocket): Promise<string> {
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString() })
  await new Promise<void>((resolve) => socket.once('end', resolve))
  return text
}

test('plaintext reaches the backend with the real client address in a PROXY v2 header; half-close works', async () => {
  const socket = await connect('PROXY TCP4 203.0.113.7 198.51.100.1 55555 443\r\n')
  const reply = readAll(socket)
  socket.write('hello')
  await eventually(() => backend.connections.some((c) => c.received.toString() === 'hello'), 5000, 'backend got the plaintext')
  socket.end() // half-close: the backend answers "bye" after our end, and we must still receive it
  const text = await reply
  assert.equal(text, 'echo:hellobye')
  const conn = backend.connections.find((c) => c.received.toString() === 'hello')
  assert.ok(conn !== undefined)
  assert.equal(conn.ended, true)
  assert.equal(conn.proxy?.version, 2)
  assert.deepEqual(conn.proxy?.source, { address: '203.0.113.7', port: 55555 })
  assert.deepEqual(conn.proxy?.destination, { address: '198.51.100.1', port: 443 })
  socket.destroy()
})

test('a client that resets its connection gets the backend\'s reset too, as HAProxy does: a cut upload never looks ended', async () => {
  const raw = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { raw.once('connect', resolve); raw.once('error', reject) })
  const socket = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' })
  socket.on('error', () => {})
  await new Promise<void>((resolve) => socket.once('secureConnect', resolve))
  socket.write('cut-upload')
  await eventually(() => backend.connections.some((c) => c.received.toString() === 'cut-upload'), 5000, 'backend got the first bytes')
  raw.resetAndDestroy()
  const conn = backend.connections.find((c) => c.received.toString() === 'cut-upload')
  assert.ok(conn !== undefined)
  // A FIN (the client's stream ended) was what the backend got before.
  await eventually(() => conn.reset || conn.ended, 5000, 'backend connection closed')
  assert.equal(conn.ended, false, 'the backend saw a clean end of the client\'s stream')
  assert.equal(conn.reset, true)
})

test('without an incoming PROXY header (auto), the backend sees the TCP peer', async () => {
  const socket = await connect()
  const localPort = socket.localPort
  const reply = readAll(socket)
  socket.end('plain')
  assert.equal(await reply, 'echo:plainbye')
  const conn = backend.connections.find((c) => c.received.toString() === 'plain')
  assert.equal(conn?.proxy?.source?.address, '127.0.0.1')
  assert.equal(conn?.proxy?.source?.port, localPort)
})

test('a PROXY v2 header from the load balancer is accepted too', async () => {
  const v2 = Buffer.concat([
    Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x21, 0x11, 0x00, 12]),
    Buffer.from([192, 0, 2, 9, 192, 0, 2, 1]), Buffer.from([0x30, 0x39, 0x01, 0xbb])
  ])
  const socket = await connect(v2)
  const reply = readAll(socket)
  socket.end('v2')
  assert.equal(await reply, 'echo:v2bye')
  const conn = backend.connections.find((c) => c.received.toString() === 'v2')
  assert.deepEqual(conn?.proxy?.source, { address: '192.0.2.9', port: 12345 })
})

test('a client behind a PROXY v2 LOCAL, v2 PROXY of family UNSPEC or v1 UNKNOWN header (no client named): the backend sees the TCP peer, as the spec and HAProxy do', async () => {
  const local = Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x20, 0x00, 0x00, 0x00])])
  // Passed on as LOCAL before: the backend saw tlsfleet's own address as the client.
  const unspec = Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x21, 0x00, 0x00, 0x00])])
  for (const [label, header] of [['local', local], ['unspec', unspec], ['unknown', 'PROXY UNKNOWN\r\n']] as const) {
    const socket = await connect(header)
    const localPort = socket.localPort
    const reply = readAll(socket)
    socket.end(label)
    assert.equal(await reply, `echo:${label}bye`)
    const conn = backend.connections.find((c) => c.received.toString() === label)
    assert.equal(conn?.proxy?.version, 2, label)
    assert.deepEqual(conn?.proxy?.source, { address: '127.0.0.1', port: localPort }, label)
    assert.deepEqual(conn?.proxy?.destination, { address: '127.0.0.1', port }, label)
  }
})

test('the AUTHORITY TLV carries the client\'s SNI only as a host name, lowercased without a trailing dot: never CR/LF or control bytes a client put there', async () => {
  for (const [label, servername, authority] of [['plain', 'localhost', 'localhost'], ['case', 'LocalHost.', 'localhost'], ['crlf', 'a\r\nX-Forwarded-For: 6.6.6.6', undefined], ['control', 'evil\u0001name', undefined]] as const) {
    const socket = await connect(undefined, servername)
    const reply = readAll(socket)
    socket.end(`sni-${label}`)
    assert.equal(await reply, `echo:sni-${label}bye`)
    const conn = backend.connections.find((c) => c.received.toString() === `sni-${label}`)
    assert.equal(decodeTlsTlvs(conn?.proxy?.tlvs ?? []).authority, authority, label)
  }
})

test('a client of the balancer\'s Unix socket (PROXY v2 AF_UNIX) is passed on as AF_UNIX, and the worker lives on', async () => {
  const paths = Buffer.alloc(216)
  Buffer.from('/run/client.sock').copy(paths, 0)
  Buffer.from('/run/haproxy-front.sock').copy(paths, 108)
  const unix = Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x21, 0x31, 0x00, 216]), paths])
  const workersBefore = await node.metric('tlsfleet_workers', { state: 'listening' })
  for (const text of ['unix-1', 'unix-2']) {
    const socket = await connect(unix)
    const reply = readAll(socket)
    socket.end(text)
    assert.equal(await reply, `echo:${text}bye`)
  }
  const conn = backend.connections.find((c) => c.received.toString() === 'unix-2')
  assert.equal(conn?.proxy?.family, 'unix')
  assert.deepEqual(conn?.proxy?.source, { address: '/run/client.sock', port: 0 })
  assert.deepEqual(conn?.proxy?.destination, { address: '/run/haproxy-front.sock', port: 0 })
  assert.ok(!node.logs.some((l) => l.msg === 'worker died; replacing it'), node.diagnosis())
  assert.equal(await node.metric('tlsfleet_workers', { state: 'listening' }), workersBefore)
})

test('large transfers keep flowing under back-pressure in both directions', async () => {
  const socket = await connect()
  const size = 4 * 1024 * 1024
  const payload = Buffer.alloc(size, 0x61)
  let received = 0
  socket.on('data', (d: Buffer) => { received += d.length })
  socket.end(payload)
  await new Promise<void>((resolve) => socket.once('end', resolve))
  // "echo:" per chunk the backend saw, plus the payload itself, plus "bye".
  assert.ok(received >= size + 3, `received only ${received} bytes`)
  const conn = backend.connections.find((c) => c.received.length === size)
  assert.ok(conn !== undefined, 'backend did not receive the whole payload')
})

async function closedWithoutHandshake (write: (raw: net.Socket) => void): Promise<number> {
  const started = Date.now()
  const raw = net.connect(port, '127.0.0.1')
  raw.on('error', () => {})
  await new Promise<void>((resolve) => raw.once('connect', resolve))
  write(raw)
  raw.resume()
  await new Promise<void>((resolve) => raw.once('close', resolve))
  return Date.now() - started
}

test('malformed and oversized PROXY headers close that connection and are counted', async () => {
  const before = await node.metric('tlsfleet_proxy_protocol_errors_total')
  await closedWithoutHandshake((raw) => raw.write('PROXY TCP4 999.1.1.1 1.2.3.4 1 2\r\n'))
  await closedWithoutHandshake((raw) => raw.write('PROXY TCP4 ' + 'x'.repeat(200)))
  const oversizedV2 = Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x21, 0x11, 0xff, 0xff])])
  await closedWithoutHandshake((raw) => raw.write(oversizedV2))
  await eventually(async () => await node.metric('tlsfleet_proxy_protocol_errors_total') === before + 3, 5000, 'three PROXY errors counted')
  // The node still serves others.
  const socket = await connect()
  socket.destroy()
})

test('a client that is not speaking TLS is closed and counted', async () => {
  const before = await node.metric('tlsfleet_handshake_failures_total', { reason: 'not_tls' })
  await closedWithoutHandshake((raw) => raw.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
  await eventually(async () => await node.metric('tlsfleet_handshake_failures_total', { reason: 'not_tls' }) === before + 1, 5000, 'not_tls counted')
})

test('health checks (a PROXY LOCAL header, a bare connect) and clients gone before TLS are counted apart, not as handshake failures', async () => {
  const failed = async (): Promise<number> => await node.metric('tlsfleet_handshake_failures_total')
  const early = async (header: string): Promise<number> => await node.metric('tlsfleet_connections_closed_before_tls_total', { header })
  const before = { failed: await failed(), local: await early('local'), none: await early('none'), proxy: await early('proxy'), closed: await node.metric('tlsfleet_handshake_failures_total', { reason: 'closed' }) }
  // HAProxy's `check` with send-proxy-v2: a v2 LOCAL header, then close.
  const local = Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x20, 0x00, 0x00, 0x00])])
  const say = async (bytes?: Buffer | string): Promise<void> => {
    const raw = net.connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => { raw.once('connect', resolve); raw.once('error', reject) })
    if (bytes === undefined) raw.end()
    else raw.end(bytes)
    await new Promise<void>((resolve) => raw.once('close', () => resolve()).resume())
  }
  for (let i = 0; i < 3; i++) await say(local)
  for (let i = 0; i < 2; i++) await say()
  await say('PROXY TCP4 192.0.2.7 127.0.0.1 5555 443\r\n')
  // A ClientHello cut short is a failure (`closed`), as before.
  await say(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x50, 0x01]))
  await eventually(async () => await early('local') === before.local + 3 && await early('none') === before.none + 2 && await early('proxy') === before.proxy + 1, 5000, 'closed before TLS counted by header')
  await eventually(async () => await node.metric('tlsfleet_handshake_failures_total', { reason: 'closed' }) === before.closed + 1, 5000, 'the cut ClientHello counted as closed')
  assert.equal(await failed(), before.failed + 1, 'only the cut ClientHello is a handshake failure')
})

test('a client that stalls in the handshake is cut at the handshake timeout, others are served meanwhile; a stall before the whole ClientHello is counted apart (hello_timeout)', async () => {
  const failures = async (reason: string): Promise<number> => await node.metric('tlsfleet_handshake_failures_total', { reason })
  const before = { timeout: await failures('timeout'), hello: await failures('hello_timeout') }
  // Half a record header's worth of ClientHello, then nothing (a slowloris).
  const stalledEarly = closedWithoutHandshake((raw) => raw.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])))
  // A whole ClientHello, then nothing: the server answers and waits for the client's Finished.
  const hello = await capturedClientHello('localhost')
  const stalledLate = closedWithoutHandshake((raw) => raw.write(hello))
  const socket = await connect()
  const reply = readAll(socket)
  socket.end('meanwhile')
  assert.equal(await reply, 'echo:meanwhilebye')
  for (const elapsed of await Promise.all([stalledEarly, stalledLate])) {
    assert.ok(elapsed >= 900 && elapsed < 5000, `stalled client closed after ${elapsed} ms, expected about 1000`)
  }
  let now = { ...before }
  await eventually(async () => {
    now = { timeout: await failures('timeout'), hello: await failures('hello_timeout') }
    return now.timeout === before.timeout + 1 && now.hello === before.hello + 1
  }, 5000, 'each timeout counted under its reason').catch((err: Error) => { throw new Error(`${err.message}: before ${JSON.stringify(before)}, now ${JSON.stringify(now)}`) })
})

test('--alpn h2,http/1.1 without the PROXY v2 alpn TLV: the start warns, naming the options as given and why; with --proxy-protocol-out v2 it does not', async () => {
  const dir = tempDir()
  const cert = makeCertificate(dir, 'alpn', ['localhost'])
  const warning = (line: Record<string, unknown>): boolean => line.level === 40 && typeof line.msg === 'string' && line.msg.includes('cannot learn which protocol each client negotiated')
  const [p1, a1, p2, a2] = await freePorts(4) as [number, number, number, number]
  const common = ['--workers', '1', '--backend', `127.0.0.1:${backend.port}`, '--cert', cert]
  // TLSFLEET_ALPN: named as given, as an operator looks for it in a compose file.
  const blind = await startNode([...common, '--listen', `127.0.0.1:${p1}`], { adminPort: a1, env: { TLSFLEET_ALPN: 'h2,http/1.1' } })
  const told = await startNode([...common, '--listen', `127.0.0.1:${p2}`, '--alpn', 'h2,http/1.1', '--proxy-protocol-out', 'v2'], { adminPort: a2 })
  try {
    const line = blind.logs.find(warning)
    assert.ok(line !== undefined, blind.diagnosis())
    assert.match(String(line.msg), /^TLSFLEET_ALPN h2,http\/1\.1: no PROXY header goes to the backend \(--proxy-protocol-out off\), .*a backend that speaks only HTTP\/1\.1 gets h2 from clients that chose it/)
    assert.equal(told.logs.find(warning), undefined, told.diagnosis())
  } finally {
    await Promise.all([blind.stop(), told.stop()])
  }
})
