import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type net from 'node:net'
import { PassThrough } from 'node:stream'
import fc from 'fast-check'
import { readPreamble } from '../../src/proxy/preamble.js'
import * as S from '../../src/tls/client-hello.js'
import { parseClientHello, type ClientHelloResult } from '../../src/tls/client-hello.js'
import { sslv2ClientHello } from '../helpers/client-hello.js'

// --- a small ClientHello builder -------------------------------------------------------------

function u16 (n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}
function vec8 (data: Buffer): Buffer { return Buffer.concat([Buffer.from([data.length]), data]) }
function vec16 (data: Buffer): Buffer { return Buffer.concat([u16(data.length), data]) }
function ext (type: number, data: Buffer): Buffer { return Buffer.concat([u16(type), vec16(data)]) }

interface HelloOptions {
  legacyVersion?: number
  sessionId?: Buffer
  sni?: string
  versions?: number[]
  /** undefined: no extension; empty buffer: extension present, empty */
  ticket?: Buffer
  psk?: Buffer[]
  /** extra raw extensions appended before pre_shared_key */
  extra?: Buffer[]
  /** omit the extensions block entirely */
  noExtensions?: boolean
  /** cipher suites offered (default TLS_AES_128_GCM_SHA256, ECDHE-RSA-AES128-GCM-SHA256) */
  ciphers?: number[]
}

function sniExt (name: string): Buffer {
  return ext(0, vec16(Buffer.concat([Buffer.from([0]), vec16(Buffer.from(name, 'latin1'))])))
}
function versionsExt (versions: number[]): Buffer {
  return ext(43, vec8(Buffer.concat(versions.map(u16))))
}
function pskExt (identities: Buffer[]): Buffer {
  const ids = Buffer.concat(identities.map((id) => Buffer.concat([vec16(id), Buffer.alloc(4, 0x11)])))
  const binders = Buffer.concat(identities.map(() => vec8(Buffer.alloc(32, 0xbb))))
  return ext(41, Buffer.concat([vec16(ids), vec16(binders)]))
}

function helloBody (o: HelloOptions = {}): Buffer {
  const parts = [
    u16(o.legacyVersion ?? 0x0303),
    Buffer.alloc(32, 0xaa),
    vec8(o.sessionId ?? Buffer.alloc(0)),
    vec16(Buffer.concat((o.ciphers ?? [0x1301, 0xc02f]).map(u16))),
    vec8(Buffer.from([0]))
  ]
  if (o.noExtensions !== true) {
    const exts: Buffer[] = []
    if (o.sni !== undefined) exts.push(sniExt(o.sni))
    if (o.versions !== undefined) exts.push(versionsExt(o.versions))
    if (o.ticket !== undefined) exts.push(ext(35, o.ticket))
    exts.push(...(o.extra ?? []))
    if (o.psk !== undefined) exts.push(pskExt(o.psk))
    parts.push(vec16(Buffer.concat(exts)))
  }
  return Buffer.concat(parts)
}

function handshake (body: Buffer, type = 1): Buffer {
  const head = Buffer.from([type, (body.length >> 16) & 0xff, (body.length >> 8) & 0xff, body.length & 0xff])
  return Buffer.concat([head, body])
}

/** Wrap a handshake message into TLS records of at most `fragment` bytes. */
function records (message: Buffer, fragment = 16384, recordVersion = 0x0301): Buffer {
  const out: Buffer[] = []
  for (let i = 0; i < message.length; i += fragment) {
    const chunk = message.subarray(i, i + fragment)
    out.push(Buffer.from([22]), u16(recordVersion), u16(chunk.length), chunk)
  }
  return Buffer.concat(out)
}

function clientHello (o: HelloOptions = {}, fragment?: number): Buffer {
  return records(handshake(helloBody(o)), fragment)
}

function ok (result: ClientHelloResult): Extract<ClientHelloResult, { status: 'ok' }>['hello'] {
  assert.equal(result.status, 'ok', `expected ok, got ${JSON.stringify(result)}`)
  if (result.status !== 'ok') throw new Error('unreachable')
  return result.hello
}

function errorReason (result: ClientHelloResult): string {
  assert.equal(result.status, 'error', `expected error, got ${result.status}`)
  return result.status === 'error' ? result.reason : ''
}

const ticket = Buffer.from(Array.from({ length: 120 }, (_, i) => i))
const pskId = Buffer.from(Array.from({ length: 90 }, (_, i) => 200 - i))

// --- tests -------------------------------------------------------------------------------------

describe('parseClientHello: fields', () => {
  it('parses a hello with no extensions at all', () => {
    const h = ok(parseClientHello(clientHello({ noExtensions: true })))
    assert.equal(h.legacyVersion, 0x0303)
    assert.equal(h.serverName, undefined)
    assert.deepEqual(h.supportedVersions, [])
    assert.equal(h.offersTls13, false)
    assert.equal(h.sessionId.length, 0)
    assert.equal(h.sessionTicketExtPresent, false)
    assert.equal(h.sessionTicket, undefined)
    assert.deepEqual(h.pskIdentities, [])
    assert.equal(h.ticketKeyName, undefined)
  })

  it('reads SNI, lowercased', () => {
    assert.equal(ok(parseClientHello(clientHello({ sni: 'WWW.Example.TEST' }))).serverName, 'www.example.test')
    assert.equal(ok(parseClientHello(clientHello({}))).serverName, undefined)
  })

  it('does not report an implausible SNI host name, but says one was sent, and still parses', () => {
    for (const bad of ['a b', 'x\u0000y', 'evil/..', '..', 'a..b', '-a.b']) {
      const h = ok(parseClientHello(clientHello({ sni: bad, versions: [0x0304] })))
      assert.equal(h.serverName, undefined, bad)
      assert.equal(h.serverNameImplausible, true, bad)
      assert.equal(h.offersTls13, true)
    }
    assert.equal(ok(parseClientHello(clientHello({ sni: 'ok.test' }))).serverNameImplausible, undefined)
    assert.equal(ok(parseClientHello(clientHello({}))).serverNameImplausible, undefined)
  })

  it('reads supported_versions and decides offersTls13', () => {
    const h = ok(parseClientHello(clientHello({ versions: [0x0a0a, 0x0304, 0x0303] })))
    assert.deepEqual(h.supportedVersions, [0x0a0a, 0x0304, 0x0303])
    assert.equal(h.offersTls13, true)
    const h12 = ok(parseClientHello(clientHello({ versions: [0x0303] })))
    assert.equal(h12.offersTls13, false)
  })

  it('reads the legacy session id', () => {
    const id = Buffer.alloc(32, 7)
    assert.deepEqual(ok(parseClientHello(clientHello({ sessionId: id }))).sessionId, id)
  })

  it('distinguishes an empty session_ticket extension from a presented ticket', () => {
    const empty = ok(parseClientHello(clientHello({ ticket: Buffer.alloc(0) })))
    assert.equal(empty.sessionTicketExtPresent, true)
    assert.equal(empty.sessionTicket, undefined)
    assert.equal(empty.ticketKeyName, undefined)
    const full = ok(parseClientHello(clientHello({ ticket })))
    assert.equal(full.sessionTicketExtPresent, true)
    assert.deepEqual(full.sessionTicket, ticket)
    assert.deepEqual(full.ticketKeyName, ticket.subarray(0, 16))
  })

  it('a ticket shorter than a key name gives no ticketKeyName', () => {
    const h = ok(parseClientHello(clientHello({ ticket: Buffer.alloc(15, 1) })))
    assert.equal(h.sessionTicket?.length, 15)
    assert.equal(h.ticketKeyName, undefined)
  })

  it('reads pre_shared_key identities; identity[0] wins over a 1.2 ticket for the key name', () => {
    const second = Buffer.alloc(40, 9)
    const h = ok(parseClientHello(clientHello({ versions: [0x0304], ticket, psk: [pskId, second] })))
    assert.deepEqual(h.pskIdentities, [pskId, second])
    assert.deepEqual(h.ticketKeyName, pskId.subarray(0, 16))
  })

  it('falls back to the 1.2 ticket when the first PSK identity is too short', () => {
    const h = ok(parseClientHello(clientHello({ versions: [0x0304], ticket, psk: [Buffer.from('external')] })))
    assert.equal(h.pskIdentities.length, 1)
    assert.deepEqual(h.ticketKeyName, ticket.subarray(0, 16))
  })

  it('returns copies that do not alias the input buffer', () => {
    const wire = clientHello({ ticket, psk: [pskId], sessionId: Buffer.alloc(32, 3) })
    const h = ok(parseClientHello(wire))
    wire.fill(0)
    assert.deepEqual(h.sessionTicket, ticket)
    assert.deepEqual(h.pskIdentities[0], pskId)
    assert.deepEqual(h.sessionId, Buffer.alloc(32, 3))
    assert.deepEqual(h.ticketKeyName, pskId.subarray(0, 16))
  })

  it('ignores unknown extensions and bytes after the hello', () => {
    const wire = clientHello({ sni: 'a.test', extra: [ext(0xfe0d, Buffer.alloc(200, 1)), ext(0x0a0a, Buffer.alloc(0))] })
    const trailing = Buffer.concat([wire, Buffer.from([0x17, 3, 3, 0, 5, 1, 2, 3])])
    assert.equal(ok(parseClientHello(trailing)).serverName, 'a.test')
  })

  it('reassembles a hello fragmented over several records', () => {
    const o = { sni: 'frag.test', versions: [0x0304], psk: [pskId] }
    for (const size of [4, 5, 7, 64, 100]) {
      const h = ok(parseClientHello(clientHello(o, size)))
      assert.equal(h.serverName, 'frag.test', `fragment ${size}`)
      assert.deepEqual(h.ticketKeyName, pskId.subarray(0, 16))
    }
  })

  it('reassembles a small hello sent in 1-byte records (handshake header split too)', () => {
    const h = ok(parseClientHello(clientHello({ noExtensions: true, sessionId: Buffer.alloc(3, 1) }, 1)))
    assert.deepEqual(h.sessionId, Buffer.alloc(3, 1))
  })

  it('accepts a large (~9 KiB) hello', () => {
    const h = ok(parseClientHello(clientHello({ sni: 'big.test', extra: [ext(0xffce, Buffer.alloc(9000, 5))] })))
    assert.equal(h.serverName, 'big.test')
  })
})

describe('parseClientHello: incremental input', () => {
  const variants: Array<[string, Buffer]> = [
    ['one record', clientHello({ sni: 'split.test', versions: [0x0304, 0x0303], ticket, psk: [pskId], sessionId: Buffer.alloc(32, 1) })],
    ['5-byte records', clientHello({ sni: 'split.test', ticket }, 5)],
    ['97-byte records', clientHello({ sni: 'split.test', versions: [0x0304], psk: [pskId] }, 97)]
  ]
  for (const [label, wire] of variants) {
    it(`is incomplete at every byte boundary until complete (${label})`, () => {
      for (let n = 0; n < wire.length; n++) {
        const r = parseClientHello(wire.subarray(0, n))
        assert.equal(r.status, 'incomplete', `prefix of ${n}/${wire.length} bytes gave ${JSON.stringify(r)}`)
        // What a byte-at-a-time reader waits for before parsing again: more than it has, never past the hello.
        if (r.status === 'incomplete' && r.needBytes !== undefined) assert.ok(r.needBytes > n && r.needBytes <= wire.length, `prefix ${n}: needBytes ${r.needBytes} of ${wire.length}`)
      }
      assert.equal(ok(parseClientHello(wire)).serverName, 'split.test')
    })
  }

  it('a 16 KiB ClientHello sent a byte at a time is read whole (the reader joins and parses again only at needBytes)', async () => {
    const wire = clientHello({ sni: 'slow.test', extra: [ext(0xffce, Buffer.alloc(16000, 5))] })
    const stream = new PassThrough()
    const result = new Promise<unknown>((resolve) => readPreamble(stream as unknown as net.Socket, 'off', resolve))
    for (let i = 0; i < wire.length; i++) stream.write(wire.subarray(i, i + 1))
    const preamble = await result as { hello?: { serverName?: string } }
    assert.equal(preamble.hello?.serverName, 'slow.test')
  })
})

describe('parseClientHello: errors', () => {
  it('says not_tls for plain text and other protocols', () => {
    assert.equal(errorReason(parseClientHello(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))), 'not_tls')
    assert.equal(errorReason(parseClientHello(Buffer.from('G'))), 'not_tls')
    assert.equal(errorReason(parseClientHello(Buffer.from('PROXY TCP4 1.2.3.4'))), 'not_tls')
    assert.equal(errorReason(parseClientHello(Buffer.from([0x16, 0x01]))), 'not_tls')
    assert.equal(errorReason(parseClientHello(Buffer.from([0x80, 0x2e, 0x04, 0x00]))), 'not_tls') // an SSLv2 message, not a hello
    assert.equal(errorReason(parseClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x02]))), 'not_tls') // an SSL 2.0 hello
  })

  it('says sslv2_hello for a TLS ClientHello in the SSLv2-compatible format (OpenSSL answers it), once 4 bytes are in', () => {
    assert.equal(parseClientHello(Buffer.from([0x80, 0x2e, 0x01])).status, 'incomplete')
    assert.equal(errorReason(parseClientHello(sslv2ClientHello())), 'sslv2_hello')
    assert.equal(errorReason(parseClientHello(sslv2ClientHello(0x0303))), 'sslv2_hello')
  })

  it('needs more bytes for an empty or tiny buffer', () => {
    assert.equal(parseClientHello(Buffer.alloc(0)).status, 'incomplete')
    assert.equal(parseClientHello(Buffer.from([0x16])).status, 'incomplete')
    assert.equal(parseClientHello(Buffer.from([0x16, 0x03, 0x01])).status, 'incomplete')
  })

  it('says not_client_hello for another handshake message, as soon as its type is known', () => {
    assert.equal(errorReason(parseClientHello(records(handshake(helloBody(), 2)))), 'not_client_hello')
    assert.equal(errorReason(parseClientHello(Buffer.from([0x16, 3, 1, 0, 100, 2]))), 'not_client_hello')
  })

  it('says too_large for a hello over 16 KiB, without waiting for it', () => {
    assert.equal(errorReason(parseClientHello(Buffer.from([0x16, 3, 1, 0x40, 0, 1, 0x00, 0x40, 0x01]))), 'too_large')
    assert.equal(errorReason(parseClientHello(clientHello({ extra: [ext(0xffce, Buffer.alloc(16400))] }))), 'too_large')
  })

  it('says too_large for absurd fragmentation', () => {
    const wire = clientHello({ sni: 'x.test', extra: [ext(0xffce, Buffer.alloc(100))] }, 1)
    assert.equal(errorReason(parseClientHello(wire)), 'too_large')
  })

  it('says malformed for broken record framing', () => {
    const wire = clientHello({ sni: 'a.test' }, 50)
    const zeroLength = Buffer.concat([Buffer.from([0x16, 3, 1, 0, 0]), wire])
    assert.equal(errorReason(parseClientHello(zeroLength)), 'malformed')
    const oversized = Buffer.from([0x16, 3, 1, 0x48, 0x01, 1, 0, 0, 10])
    assert.equal(errorReason(parseClientHello(oversized)), 'malformed')
    const interleaved = Buffer.from(wire)
    interleaved[55] = 0x17 // second record claims to be application data
    assert.equal(errorReason(parseClientHello(interleaved)), 'malformed')
    // A record that carries more than the ClientHello.
    const body = helloBody({ sni: 'a.test' })
    const extra = records(Buffer.concat([handshake(body), Buffer.from([20, 0, 0, 0])]))
    assert.equal(errorReason(parseClientHello(extra)), 'malformed')
  })

  it('says malformed for broken lengths inside the hello', () => {
    const cases: Array<[string, Buffer]> = [
      ['empty body', Buffer.alloc(0)],
      ['short random', Buffer.concat([u16(0x0303), Buffer.alloc(20)])],
      ['session id of 33', Buffer.concat([u16(0x0303), Buffer.alloc(32), vec8(Buffer.alloc(33)), vec16(Buffer.from([0x13, 1])), vec8(Buffer.from([0]))])],
      ['odd cipher suites', Buffer.concat([u16(0x0303), Buffer.alloc(32), vec8(Buffer.alloc(0)), vec16(Buffer.from([0x13])), vec8(Buffer.from([0]))])],
      ['no compression', Buffer.concat([u16(0x0303), Buffer.alloc(32), vec8(Buffer.alloc(0)), vec16(Buffer.from([0x13, 1])), vec8(Buffer.alloc(0))])]
    ]
    const good = helloBody({ sni: 'a.test', versions: [0x0304], ticket, psk: [pskId] })
    const extLenOff = 2 + 32 + 1 + (2 + 4) + (1 + 1) // version, random, empty session id, suites, compression
    const extTooLong = Buffer.from(good)
    extTooLong.writeUInt16BE(good.readUInt16BE(extLenOff) + 1, extLenOff)
    cases.push(['extensions length too long', extTooLong])
    const extTooShort = Buffer.from(good)
    extTooShort.writeUInt16BE(good.readUInt16BE(extLenOff) - 1, extLenOff)
    cases.push(['extensions length too short', extTooShort])
    cases.push(['truncated extension', Buffer.concat([helloBody({ noExtensions: true }), vec16(Buffer.from([0, 0, 0, 9, 1]))])])
    cases.push(['duplicate extension', helloBody({ sni: 'a.test', extra: [sniExt('b.test')] })])
    // Duplicates are tracked three ways (types below 32, 32-63, the rest): one of each.
    cases.push(['duplicate extension 31', helloBody({ extra: [ext(31, Buffer.alloc(0)), ext(31, Buffer.alloc(0))] })])
    cases.push(['duplicate extension 45', helloBody({ extra: [ext(45, Buffer.alloc(1, 1)), ext(13, Buffer.alloc(0)), ext(45, Buffer.alloc(1, 1))] })])
    cases.push(['duplicate GREASE extension', helloBody({ extra: [ext(0x0a0a, Buffer.alloc(0)), ext(0xff01, Buffer.alloc(1)), ext(0x0a0a, Buffer.alloc(0))] })])
    cases.push(['bad SNI list length', helloBody({ extra: [ext(0, Buffer.from([0, 9, 0, 0, 1, 0x61]))] })])
    cases.push(['empty SNI host', helloBody({ extra: [ext(0, vec16(Buffer.from([0, 0, 0])))] })])
    cases.push(['odd supported_versions', helloBody({ extra: [ext(43, vec8(Buffer.from([3, 4, 3])))] })])
    cases.push(['supported_versions with junk after', helloBody({ extra: [ext(43, Buffer.concat([vec8(u16(0x0304)), Buffer.from([0])]))] })])
    const noBinders = ext(41, Buffer.concat([vec16(Buffer.concat([vec16(pskId), Buffer.alloc(4)])), vec16(Buffer.alloc(0))]))
    cases.push(['pre_shared_key without binders', helloBody({ extra: [noBinders] })])
    const shortBinder = ext(41, Buffer.concat([vec16(Buffer.concat([vec16(pskId), Buffer.alloc(4)])), vec16(vec8(Buffer.alloc(31)))]))
    cases.push(['pre_shared_key binder too short', helloBody({ extra: [shortBinder] })])
    const countMismatch = ext(41, Buffer.concat([vec16(Buffer.concat([vec16(pskId), Buffer.alloc(4)])), vec16(Buffer.concat([vec8(Buffer.alloc(32)), vec8(Buffer.alloc(32))]))]))
    cases.push(['pre_shared_key binder count mismatch', helloBody({ extra: [countMismatch] })])
    const noAge = ext(41, Buffer.concat([vec16(vec16(Buffer.alloc(20, 1))), vec16(vec8(Buffer.alloc(32)))]))
    cases.push(['pre_shared_key identity without ticket age', helloBody({ extra: [noAge] })])

    for (const [label, body] of cases) {
      assert.deepEqual(parseClientHello(records(handshake(body))), { status: 'error', reason: 'malformed' }, label)
    }
    // Sanity: the unmodified body parses.
    assert.equal(ok(parseClientHello(records(handshake(good)))).serverName, 'a.test')
    // One of each type, in every range the duplicate check keeps apart, is fine.
    const distinct = helloBody({ sni: 'a.test', extra: [ext(31, Buffer.alloc(0)), ext(32, Buffer.alloc(0)), ext(63, Buffer.alloc(0)), ext(64, Buffer.alloc(0)), ext(0x0a0a, Buffer.alloc(0)), ext(0x1a1a, Buffer.alloc(0))] })
    assert.equal(ok(parseClientHello(records(handshake(distinct)))).serverName, 'a.test')
  })
})

describe('parseClientHello: fuzz', () => {
  const statuses = new Set(['ok', 'incomplete', 'error'])
  const reasons = new Set(['not_tls', 'not_client_hello', 'malformed', 'too_large', 'sslv2_hello'])
  const wellFormed = (r: ClientHelloResult): boolean =>
    statuses.has(r.status) && (r.status !== 'error' || reasons.has(r.reason))

  it('never throws on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      return wellFormed(parseClientHello(Buffer.from(bytes)))
    }), { numRuns: 2000 })
  })

  it('never throws on random bytes behind a plausible record + handshake header', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffffff }), fc.uint8Array({ maxLength: 600 }),
      (recLen, hsLen, rest) => {
        const head = Buffer.from([0x16, 3, 1, recLen >> 8, recLen & 0xff, 1, hsLen >> 16, (hsLen >> 8) & 0xff, hsLen & 0xff])
        return wellFormed(parseClientHello(Buffer.concat([head, rest])))
      }), { numRuns: 2000 })
  })

  const base = clientHello({ sni: 'fuzz.test', versions: [0x0304, 0x0303], ticket, psk: [pskId, Buffer.alloc(20, 4)], sessionId: Buffer.alloc(32, 2) })

  it('never throws on mutated real-shaped hellos', () => {
    const mutation = fc.array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 })
    fc.assert(fc.property(mutation, fc.nat({ max: base.length }), (edits, cut) => {
      const wire = Buffer.from(base)
      for (const [at, value] of edits) wire[at] = value
      return wellFormed(parseClientHello(wire)) && wellFormed(parseClientHello(wire.subarray(0, cut)))
    }), { numRuns: 2000 })
  })

  it('never throws on hellos with spliced or deleted ranges', () => {
    fc.assert(fc.property(fc.nat({ max: base.length }), fc.nat({ max: 64 }), fc.uint8Array({ maxLength: 64 }), (at, del, insert) => {
      const wire = Buffer.concat([base.subarray(0, at), Buffer.from(insert), base.subarray(Math.min(base.length, at + del))])
      return wellFormed(parseClientHello(wire))
    }), { numRuns: 2000 })
  })

  it('round-trips generated well-formed hellos', () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/)
    const arb = fc.record({
      labels: fc.array(label, { minLength: 1, maxLength: 4 }),
      versions: fc.option(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 8 }), { nil: undefined }),
      ticket: fc.option(fc.uint8Array({ maxLength: 300 }), { nil: undefined }),
      psk: fc.option(fc.array(fc.uint8Array({ minLength: 1, maxLength: 200 }), { minLength: 1, maxLength: 4 }), { nil: undefined }),
      sessionId: fc.uint8Array({ maxLength: 32 }),
      fragment: fc.integer({ min: 32, max: 2000 }) // >= 32: stays under the record-count cap
    })
    fc.assert(fc.property(arb, (a) => {
      const o: HelloOptions = { sni: a.labels.join('.'), sessionId: Buffer.from(a.sessionId) }
      if (a.versions !== undefined) o.versions = a.versions
      if (a.ticket !== undefined) o.ticket = Buffer.from(a.ticket)
      if (a.psk !== undefined) o.psk = a.psk.map((p) => Buffer.from(p))
      const h = ok(parseClientHello(clientHello(o, a.fragment)))
      assert.equal(h.serverName, o.sni)
      assert.deepEqual(h.supportedVersions, a.versions ?? [])
      assert.equal(h.offersTls13, (a.versions ?? []).includes(0x0304))
      assert.deepEqual(h.sessionId, Buffer.from(a.sessionId))
      assert.equal(h.sessionTicketExtPresent, a.ticket !== undefined)
      assert.deepEqual(h.sessionTicket, a.ticket !== undefined && a.ticket.length > 0 ? Buffer.from(a.ticket) : undefined)
      assert.deepEqual(h.pskIdentities, (a.psk ?? []).map((p) => Buffer.from(p)))
      const first = a.psk?.[0]
      const expectedName = first !== undefined && first.length >= 16
        ? Buffer.from(first.subarray(0, 16))
        : a.ticket !== undefined && a.ticket.length >= 16 ? Buffer.from(a.ticket.subarray(0, 16)) : undefined
      assert.deepEqual(h.ticketKeyName, expectedName)
    }), { numRuns: 500 })
  })
})

function sigalgsExt (schemes: number[]): Buffer {
  return ext(13, vec16(Buffer.concat(schemes.map(u16))))
}

describe('ClientHello: what the client says about ECDSA, and status_request', () => {
  const signatures = (o: HelloOptions): number => ok(parseClientHello(clientHello(o))).signatures
  const groupsExt = (groups: number[]): Buffer => ext(10, vec16(Buffer.concat(groups.map(u16))))

  it('signature_algorithms: ECDSA schemes, and the curve a TLS 1.3 scheme names', () => {
    assert.equal(signatures({ extra: [sigalgsExt([0x0804, 0x0401, 0x0403])] }), S.SIGNATURES_SENT | S.SIGNATURES_ECDSA | S.SIGNATURES_ECDSA_P256)
    assert.equal(signatures({ extra: [sigalgsExt([0x0503, 0x0603])] }), S.SIGNATURES_SENT | S.SIGNATURES_ECDSA | S.SIGNATURES_ECDSA_P384 | S.SIGNATURES_ECDSA_P521)
    assert.equal(signatures({ extra: [sigalgsExt([0x0201, 0x0203, 0x0303])] }), S.SIGNATURES_SENT, 'TLS 1.2 sha1/ecdsa and sha224/ecdsa: OpenSSL refuses them above level 0')
    assert.equal(signatures({ extra: [sigalgsExt([0x0401])] }) | signatures({ extra: [sigalgsExt([0x0403])] }), S.SIGNATURES_SENT | S.SIGNATURES_ECDSA | S.SIGNATURES_ECDSA_P256)
    assert.equal(signatures({ extra: [sigalgsExt([0x0804, 0x0805, 0x0401, 0x0501])] }), S.SIGNATURES_SENT, 'RSA only')
    assert.equal(signatures({ extra: [sigalgsExt([0x081a, 0x0807])] }), S.SIGNATURES_SENT, 'brainpool and Ed25519 only')
  })

  it('an ECDSA cipher suite offered, with extensions or without', () => {
    assert.equal(signatures({ ciphers: [0xc02f, 0xc02b] }), S.SIGNATURES_ECDSA_SUITE)
    assert.equal(signatures({ ciphers: [0xc02f, 0x009c] }), 0)
    assert.equal(signatures({ ciphers: [0xc00a], noExtensions: true }), S.SIGNATURES_ECDSA_SUITE)
    assert.equal(signatures({ ciphers: [0xcca9] }), S.SIGNATURES_ECDSA_SUITE, 'ECDHE-ECDSA-CHACHA20-POLY1305')
    assert.equal(signatures({ ciphers: [0xcca8] }), 0, 'ECDHE-RSA-CHACHA20-POLY1305')
  })

  it('supported_groups: which NIST curves', () => {
    assert.equal(signatures({ extra: [groupsExt([0x001d, 0x0017])] }), S.SIGNATURES_GROUPS_SENT | S.SIGNATURES_GROUP_P256)
    assert.equal(signatures({ extra: [groupsExt([0x0018, 0x0019, 0x11ec])] }), S.SIGNATURES_GROUPS_SENT | S.SIGNATURES_GROUP_P384 | S.SIGNATURES_GROUP_P521)
  })

  it('status_request', () => {
    assert.equal(ok(parseClientHello(clientHello({}))).statusRequest, false)
    assert.equal(ok(parseClientHello(clientHello({ extra: [ext(5, Buffer.from([1, 0, 0, 0, 0]))] }))).statusRequest, true)
  })

  it('a malformed signature_algorithms or supported_groups extension is a malformed hello', () => {
    assert.equal(errorReason(parseClientHello(clientHello({ extra: [ext(13, Buffer.from([0x00, 0x03, 0x04, 0x03, 0x05]))] }))), 'malformed', 'odd length')
    assert.equal(errorReason(parseClientHello(clientHello({ extra: [ext(13, Buffer.from([0x00, 0x04, 0x04, 0x03]))] }))), 'malformed', 'length beyond the extension')
    assert.equal(errorReason(parseClientHello(clientHello({ extra: [ext(13, Buffer.from([0x00, 0x00]))] }))), 'malformed', 'empty list')
    assert.equal(errorReason(parseClientHello(clientHello({ extra: [ext(10, Buffer.from([0x00, 0x02, 0x00]))] }))), 'malformed', 'groups: length beyond the extension')
  })
})
