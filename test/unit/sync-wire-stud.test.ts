import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, createHmac, generateKeyPairSync } from 'node:crypto'
import fs from 'node:fs'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import {
  decodeStud, encodeStud, studHmacKeyFromPrivateKeyPem,
  STUD_MAX_PACKET_BYTES, STUD_MIN_PACKET_BYTES,
  type StudDecodeContext, type StudDecodeResult
} from '../../src/sync/wire-stud.js'

const NOW = 1_700_000_000_000
const NOW_S = NOW / 1000
const TIMEOUT = 300

const sessionId = Buffer.alloc(32, 0x5a)
const der = Buffer.from('3082009f020101020203030402c02f0420' + 'cd'.repeat(140), 'hex')

function reason (r: StudDecodeResult): string { return r.ok ? 'accepted' : r.reason }

/** The datagram exactly as hitch's shcupd_session_new lays it out, without our encoder. */
function handBuilt (key: Buffer, id: Buffer, session: Buffer, time: number): Buffer {
  const paddedId = Buffer.alloc(32)
  id.copy(paddedId)
  const t = Buffer.alloc(4)
  t.writeUInt32BE(time)
  const signed = Buffer.concat([paddedId, session, t])
  return Buffer.concat([signed, createHmac('sha1', key).update(signed).digest()])
}

describe('stud/hitch wire format', () => {
  let rsaPem = ''
  let ecPem = ''
  let opensslKey = Buffer.alloc(0)
  const ctx = (overrides: Partial<StudDecodeContext> = {}): StudDecodeContext =>
    ({ hmacKey: opensslKey, now: () => NOW, sessionTimeoutSeconds: TIMEOUT, ...overrides })

  before(() => {
    const dir = tempDir('tlsfleet-stud-')
    rsaPem = fs.readFileSync(makeCertificate(dir, 'rsa', ['stud.test']), 'utf8')
    ecPem = fs.readFileSync(makeCertificate(dir, 'ec', ['stud.test'], 'ecdsa'), 'utf8')
    // Independent of our code: the PKCS#1 DER as the openssl CLI writes it, then SHA-1
    // (what hitch's compute_secret does with i2d_RSAPrivateKey + SHA1).
    const pkcs1 = execFileSync('openssl', ['rsa', '-in', `${dir}/rsa.key`, '-traditional', '-outform', 'DER'], { stdio: ['ignore', 'pipe', 'ignore'] })
    assert.equal(pkcs1[0], 0x30)
    opensslKey = createHash('sha1').update(pkcs1).digest()
  })

  it('HMAC key = SHA-1 of the PKCS#1 RSA key, from a key+certificate PEM', () => {
    const key = studHmacKeyFromPrivateKeyPem(rsaPem)
    assert.equal(key.length, 20)
    assert.deepEqual(key, opensslKey)
  })

  it('refuses an EC key with a clear error (hitch would sign with all zeros)', () => {
    assert.throws(() => studHmacKeyFromPrivateKeyPem(ecPem), /needs an RSA private key.*this key is ec/)
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    assert.throws(() => studHmacKeyFromPrivateKeyPem(ed), /needs an RSA private key/)
    assert.throws(() => studHmacKeyFromPrivateKeyPem('not a key'), /cannot read the private key/)
  })

  it('a packet built by hand from the spec decodes', () => {
    const packet = handBuilt(opensslKey, sessionId, der, NOW_S - 3)
    assert.equal(packet.length, 32 + der.length + 4 + 20)
    const r = decodeStud(packet, ctx())
    assert.ok(r.ok, reason(r))
    assert.deepEqual(r.message, { op: 'new', sessionId, session: der, createdAt: NOW_S - 3 })
  })

  it('encodeStud writes the same bytes as the spec', () => {
    assert.deepEqual(encodeStud({ op: 'new', sessionId, session: der, createdAt: NOW_S }, opensslKey), handBuilt(opensslKey, sessionId, der, NOW_S))
    const shortId = Buffer.from('0102030405', 'hex')
    const packet = encodeStud({ op: 'new', sessionId: shortId, session: der, createdAt: NOW_S }, opensslKey)
    assert.deepEqual(packet, handBuilt(opensslKey, shortId, der, NOW_S))
    // the receiver only sees the zero-padded 32-byte field
    const r = decodeStud(packet, ctx())
    assert.ok(r.ok)
    assert.deepEqual(r.message.sessionId, Buffer.concat([shortId, Buffer.alloc(27)]))
  })

  it('DER sizes 1 and 512 round-trip; the length is implied by the datagram', () => {
    for (const size of [1, 512]) {
      const session = Buffer.alloc(size, 7)
      const packet = encodeStud({ op: 'new', sessionId, session, createdAt: NOW_S }, opensslKey)
      assert.equal(packet.length, size === 1 ? STUD_MIN_PACKET_BYTES : STUD_MAX_PACKET_BYTES)
      const r = decodeStud(packet, ctx())
      assert.ok(r.ok)
      assert.deepEqual(r.message.session, session)
    }
  })

  it('bad_hmac: flipped bits anywhere, or another key', () => {
    const packet = handBuilt(opensslKey, sessionId, der, NOW_S)
    for (const offset of [0, 31, 32, 32 + der.length - 1, 32 + der.length, packet.length - 21, packet.length - 20, packet.length - 1]) {
      const copy = Buffer.from(packet)
      copy[offset] = (copy[offset] as number) ^ 0x01
      assert.equal(reason(decodeStud(copy, ctx())), 'bad_hmac', `offset ${offset}`)
    }
    assert.equal(reason(decodeStud(packet, ctx({ hmacKey: Buffer.alloc(20) }))), 'bad_hmac')
    // hitch with an EC key signs with 20 zero bytes: we do not accept that either
    assert.equal(reason(decodeStud(handBuilt(Buffer.alloc(20), sessionId, der, NOW_S), ctx())), 'bad_hmac')
  })

  it('bad_length: outside 57..568 bytes', () => {
    for (const len of [0, 1, 20, 56]) assert.equal(reason(decodeStud(Buffer.alloc(len), ctx())), 'bad_length', `length ${len}`)
    const tooBig = handBuilt(opensslKey, sessionId, Buffer.alloc(513, 1), NOW_S)
    assert.equal(tooBig.length, 569)
    assert.equal(reason(decodeStud(tooBig, ctx())), 'bad_length')
  })

  it('time: hitch drops |now - time| >= timeout', () => {
    const at = (t: number): string => reason(decodeStud(handBuilt(opensslKey, sessionId, der, t), ctx()))
    assert.equal(at(NOW_S - TIMEOUT + 1), 'accepted')
    assert.equal(at(NOW_S - TIMEOUT), 'stale')
    assert.equal(at(NOW_S + TIMEOUT - 1), 'accepted')
    assert.equal(at(NOW_S + TIMEOUT), 'future')
    assert.equal(at(0), 'stale')
    assert.equal(at(0xffffffff), 'future')
    // whole seconds, like hitch's ev_now cast to time_t
    const late = decodeStud(handBuilt(opensslKey, sessionId, der, NOW_S - TIMEOUT + 1), ctx({ now: () => NOW + 999 }))
    assert.ok(late.ok)
  })

  it('maxSkewSeconds (optional, stricter than hitch) refuses far-future packets', () => {
    const packet = handBuilt(opensslKey, sessionId, der, NOW_S + 10)
    assert.ok(decodeStud(packet, ctx()).ok)
    assert.equal(reason(decodeStud(packet, ctx({ maxSkewSeconds: 5 }))), 'future')
    assert.ok(decodeStud(handBuilt(opensslKey, sessionId, der, NOW_S + 5), ctx({ maxSkewSeconds: 5 })).ok)
  })

  it('the encoder refuses what hitch cannot take', () => {
    const key = opensslKey
    assert.throws(() => encodeStud({ op: 'new', sessionId: Buffer.alloc(33), session: der, createdAt: NOW_S }, key), /session id/)
    assert.throws(() => encodeStud({ op: 'new', sessionId, session: Buffer.alloc(513), createdAt: NOW_S }, key), /1 to 512/)
    assert.throws(() => encodeStud({ op: 'new', sessionId, session: Buffer.alloc(0), createdAt: NOW_S }, key), /1 to 512/)
    assert.throws(() => encodeStud({ op: 'new', sessionId, session: der, createdAt: 2 ** 32 }, key), /createdAt/)
  })

  it('is signed, not encrypted: the DER is readable on the wire', () => {
    const packet = encodeStud({ op: 'new', sessionId, session: der, createdAt: NOW_S }, opensslKey)
    assert.equal(packet.indexOf(der), 32)
  })
})
