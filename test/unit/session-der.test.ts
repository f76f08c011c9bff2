import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import tls from 'node:tls'
import { test } from 'node:test'
import { sessionIdContextOf, sessionProtocolVersion } from '../../src/tls/session-der.js'
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
