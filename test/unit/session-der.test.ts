import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import tls from 'node:tls'
import { test } from 'node:test'
import { readSession, sessionProtocolVersion } from '../../src/tls/session-der.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import fs from 'node:fs'

/** DER sessions as OpenSSL makes them, from a real server with this session-ID context. */
async function realSession (sessionIdContext: string, version: 'TLSv1.2' | 'TLSv1.3'): Promise<Buffer> {
  const pem = fs.readFileSync(makeCertificate(tempDir(), 'der', ['localhost']), 'utf8')
  // No tickets: OpenSSL then keeps (and reports) the session server-side, in both versions.
  const server = tls.createServer({ key: pem, cert: pem, sessionIdContext, minVersion: version, maxVersion: version, secureOptions: crypto.constants.SSL_OP_NO_TICKET })
  const made = new Promise<Buffer>((resolve) => server.on('newSession', (_id: Buffer, der: Buffer, done: () => void) => { resolve(der); done() }))
  server.on('secureConnection', (socket) => socket.end())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const client = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: version, maxVersion: version })
  client.on('data', () => {})
  client.on('error', () => {})
  const der = await made
  client.destroy()
  server.close()
  return der
}

const NOW = Date.now() / 1000
const sessionIdContextOf = (der: Buffer): Buffer | undefined => readSession(der, NOW)?.sessionIdContext
const sessionExpired = (der: Buffer, nowSeconds: number): boolean | undefined => readSession(der, nowSeconds)?.expired

test('one read of a real TLS 1.2 or 1.3 session gives both its session-ID context and whether it has expired', async () => {
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const der = await realSession('farm-ctx-2', version)
    const now = Date.now() / 1000
    assert.deepEqual(readSession(der, now), { sessionIdContext: Buffer.from('farm-ctx-2', 'latin1'), expired: false }, version)
    // OpenSSL's default timeout, 7200 s: the same context, now past its end.
    assert.deepEqual(readSession(der, now + 7202), { sessionIdContext: Buffer.from('farm-ctx-2', 'latin1'), expired: true }, version)
    assert.equal(readSession(der.subarray(0, der.length - 1), now), undefined, `${version}: a truncated session gives neither`)
  }
})

test('the session-ID context is read out of real TLS 1.2 and 1.3 sessions', async () => {
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const der = await realSession('farm-ctx-1', version)
    assert.equal(sessionIdContextOf(der)?.toString('latin1'), 'farm-ctx-1', version)
    assert.equal(sessionProtocolVersion(der), version === 'TLSv1.2' ? 0x0303 : 0x0304)
  }
})

test('a truncated or foreign DER reads as undefined, never throws', async () => {
  const der = await realSession('x', 'TLSv1.2')
  for (let cut = 0; cut < der.length; cut++) {
    const value = sessionIdContextOf(der.subarray(0, cut))
    assert.ok(value === undefined || value.length <= 32)
  }
  for (let i = 0; i < 2000; i++) sessionIdContextOf(crypto.randomBytes(1 + (i % 300)))
  assert.equal(sessionIdContextOf(Buffer.from([0x04, 0x01, 0x00])), undefined, 'not a SEQUENCE')
  // Garbage a peer holding the farm key could send: it was read as "no context", so a session
  // OpenSSL refused was taken for one made elsewhere, never dropped, and the warning misled.
  assert.equal(sessionIdContextOf(Buffer.from('30820000deadbeef', 'hex')), undefined, 'an empty SEQUENCE, then bytes')
  assert.equal(sessionIdContextOf(Buffer.from('3000', 'hex')), undefined, 'an empty SEQUENCE')
  assert.equal(sessionIdContextOf(Buffer.concat([der, Buffer.from([0])])), undefined, 'a byte after the session')
  assert.equal(sessionIdContextOf(der)?.toString('latin1'), 'x')
})

test('a session is expired past its own time plus timeout, as OpenSSL judges it; a DER d2i_SSL_SESSION would refuse is unreadable', async () => {
  // The session's time is whole seconds, no earlier than this: a bound taken after it crossed a
  // second under load (now + 7199 was then past time + 7200), and the test failed now and then.
  const before = Math.floor(Date.now() / 1000)
  const der = await realSession('x', 'TLSv1.2')
  const now = Date.now() / 1000
  assert.equal(sessionExpired(der, now), false)
  // A plain Node server's sessions carry OpenSSL's default timeout, 7200 s.
  assert.equal(sessionExpired(der, before + 7199), false)
  assert.equal(sessionExpired(der, now + 7202), true)
  for (let cut = 0; cut < der.length; cut++) assert.equal(sessionExpired(der.subarray(0, cut), now), undefined)
  assert.equal(sessionExpired(Buffer.concat([der, Buffer.from([0])]), now), undefined, 'a byte after the session')
  assert.equal(sessionExpired(crypto.randomBytes(120), now), undefined)
  // Whole SEQUENCEs of the layout, with fields out of d2i_SSL_SESSION's bounds: unreadable.
  const tlv = (tag: number, ...content: Buffer[]): Buffer => { const body = Buffer.concat(content); return Buffer.concat([Buffer.from([tag, body.length]), body]) }
  const made = (cipher: number, masterKey: number, time = Math.floor(now)): Buffer => tlv(0x30, tlv(0x02, Buffer.from([1])), tlv(0x02, Buffer.from([3, 3])),
    tlv(0x04, Buffer.alloc(cipher, 0xc0)), tlv(0x04, Buffer.alloc(32, 7)), tlv(0x04, Buffer.alloc(masterKey, 9)),
    tlv(0xa1, tlv(0x02, Buffer.from([time >>> 24, (time >>> 16) & 0xff, (time >>> 8) & 0xff, time & 0xff]))), tlv(0xa2, tlv(0x02, Buffer.from([0x01, 0x2c]))))
  assert.equal(sessionExpired(made(2, 48), now), false)
  assert.equal(sessionExpired(made(2, 48, Math.floor(now) - 301), now), true)
  assert.equal(sessionExpired(made(3, 48), now), undefined, 'a cipher ID of 3 bytes')
  assert.equal(sessionExpired(made(2, 65), now), undefined, 'a master key of 65 bytes')
})
