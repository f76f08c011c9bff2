import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createCipheriv, hkdfSync } from 'node:crypto'
import { FarmKeyRing, deriveKey, FARM_KEY_LABELS, type FarmKey } from '../../src/sync/farm-keys.js'
import { ReplayGuard } from '../../src/sync/replay-guard.js'
import { SYNC_CIPHERS, type SyncCipher } from '../../src/sync/sync-aead.js'
import {
  createSequenceCounter, decodeV2, encodeV2, encodedLengthV2, packetLimitV2, sealV2,
  MAX_SMALL_PACKET_BYTES, MAX_UDP_PAYLOAD_BYTES, V2_HEADER_BYTES, V2_OVERHEAD_BYTES,
  type DecodeContext, type DecodeResult, type EncodeContext, type SyncMessage
} from '../../src/sync/wire-v2.js'

// --- fixtures -----------------------------------------------------------------------------

const NOW = 1_700_000_000_000 // ms, fixed clock
const NOW_S = NOW / 1000
const LIFETIME = 300
const SKEW = 5

const key1: FarmKey = { id: 1, secret: Buffer.alloc(32, 0x11) }
const key2: FarmKey = { id: 2, secret: Buffer.alloc(48, 0x22) }
const nodeA = Buffer.from('a1a2a3a4a5a6a7a8', 'hex')
const nodeB = Buffer.from('b1b2b3b4b5b6b7b8', 'hex')

const sessionId = Buffer.alloc(32, 0x5a)
const der = Buffer.from('3082009f020101020203030402c02f0420' + 'ab'.repeat(140), 'hex')

function encodeCtx (ring: FarmKeyRing, overrides: Partial<EncodeContext> = {}): EncodeContext {
  return { keyRing: ring, nodeId: nodeA, nextSequence: createSequenceCounter(NOW), now: () => NOW, ...overrides }
}

function decodeCtx (ring: FarmKeyRing, overrides: Partial<DecodeContext> = {}): DecodeContext {
  return {
    keyRing: ring,
    ownNodeId: nodeB,
    replay: new ReplayGuard(),
    now: () => NOW,
    sessionLifetimeSeconds: LIFETIME,
    maxSkewSeconds: SKEW,
    maxPacketBytes: 16_000,
    ...overrides
  }
}

function newMessage (createdAt = NOW_S - 10): SyncMessage {
  return { op: 'new', sessionId, session: der, createdAt }
}

function reason (result: DecodeResult): string {
  return result.ok ? 'accepted' : result.reason
}

function flipBit (packet: Buffer, offset: number, bit = 0): Buffer {
  const copy = Buffer.from(packet)
  copy[offset] = (copy[offset] as number) ^ (1 << bit)
  return copy
}

const ring1 = new FarmKeyRing([key1])

// --- round trips --------------------------------------------------------------------------

describe('sync v2 round trips', () => {
  const messages: SyncMessage[] = [
    newMessage(),
    { op: 'new', sessionId: Buffer.from([7]), session: Buffer.from([0x30]), createdAt: NOW_S },
    { op: 'del', sessionId },
    { op: 'del', sessionId: Buffer.alloc(1, 9) },
    { op: 'snapshot-request', requestId: 0 },
    { op: 'snapshot-request', requestId: 0xffffffff },
    { op: 'snapshot-request', requestId: 7, cookie: { issuedAt: NOW_S, mac: Buffer.alloc(16, 0xc3) } },
    { op: 'snapshot-challenge', requestId: 7, cookie: { issuedAt: 1, mac: Buffer.alloc(16, 0) } },
    { op: 'snapshot-chunk', requestId: 42, sessions: [], last: true },
    {
      op: 'snapshot-chunk',
      requestId: 43,
      last: false,
      sessions: [
        { sessionId, session: der, createdAt: NOW_S - 100 },
        { sessionId: Buffer.alloc(16, 1), session: Buffer.alloc(600, 2), createdAt: NOW_S },
        { sessionId: Buffer.alloc(32, 3), session: Buffer.alloc(1, 4), createdAt: NOW_S - LIFETIME }
      ]
    }
  ]

  for (const msg of messages) {
    it(`${msg.op} ${JSON.stringify(msg).length}`, () => {
      const ctx = encodeCtx(ring1)
      const packet = encodeV2(msg, ctx)
      assert.equal(packet.length, encodedLengthV2(msg))
      assert.ok(packet.length <= packetLimitV2(msg.op))
      const result = decodeV2(packet, decodeCtx(ring1))
      assert.ok(result.ok, reason(result))
      assert.deepEqual(result.message, msg)
      assert.equal(result.sender, nodeA.toString('hex'))
      assert.equal(result.sequence, BigInt(NOW) * 1000n)
      assert.equal(result.keyId, 1)
      assert.equal(result.sentAtMs, NOW)
    })
  }

  it('never carries the session id or the DER in clear', () => {
    const packet = encodeV2(newMessage(), encodeCtx(ring1))
    assert.equal(packet.indexOf(sessionId.subarray(0, 8)), -1)
    assert.equal(packet.indexOf(der.subarray(0, 12)), -1)
    assert.equal(packet.indexOf(der.subarray(-12)), -1)
  })

  it('uses a fresh random nonce per packet: two encodings of one message differ', () => {
    const ctx = encodeCtx(ring1, { nextSequence: () => 5n })
    const a = encodeV2(newMessage(), ctx)
    const b = encodeV2(newMessage(), ctx)
    assert.notDeepEqual(a.subarray(31, 43), b.subarray(31, 43))
  })

  it('sequence numbers come from the context and increase', () => {
    const ctx = encodeCtx(ring1)
    const dctx = decodeCtx(ring1)
    const seqs = [0, 1, 2].map(() => {
      const r = decodeV2(encodeV2({ op: 'del', sessionId }, ctx), dctx)
      assert.ok(r.ok)
      return r.sequence
    })
    assert.deepEqual(seqs, [0n, 1n, 2n].map((d) => BigInt(NOW) * 1000n + d))
  })

  it('results do not alias the datagram buffer', () => {
    const packet = encodeV2(newMessage(), encodeCtx(ring1))
    const result = decodeV2(packet, decodeCtx(ring1))
    assert.ok(result.ok && result.message.op === 'new')
    packet.fill(0)
    assert.deepEqual(result.message.session, der)
    assert.equal(result.sender, nodeA.toString('hex'))
  })
})

// --- the documented layout, built by hand -------------------------------------------------

describe('sync v2 layout (docs/wire-protocol.md)', () => {
  // Each cipher: its HKDF label, its version byte, and node:crypto's name for it.
  const SPEC = {
    'chacha20-poly1305': { label: 'tlsfleet sync v2 chacha20-poly1305', version: 3 },
    'aes-256-gcm': { label: 'tlsfleet sync v2 aead', version: 2 }
  } as const
  function handBuilt (nonce: Buffer, cipherName: SyncCipher = 'chacha20-poly1305'): Buffer {
    const spec = SPEC[cipherName]
    const aeadKey = Buffer.from(hkdfSync('sha256', key1.secret, Buffer.from('tlsfleet farm secret'), Buffer.from(spec.label), 32))
    const body = Buffer.concat([
      Buffer.from([32]), sessionId,
      Buffer.from([0x65, 0x53, 0xf0, 0xf6]), // createdAt 1700000000 - 10 = 1699999990 = 0x6553f0f6
      Buffer.from([0x00, der.length]), der
    ])
    const header = Buffer.concat([
      Buffer.from('TF', 'ascii'), Buffer.from([spec.version, 1, 1]), nodeA,
      Buffer.from('0000000000000007', 'hex'), // sequence 7
      Buffer.from('0000018bcfe56800', 'hex'), // sent at 1700000000000 ms
      Buffer.from([body.length >> 8, body.length & 0xff]),
      nonce
    ])
    assert.equal(header.length, V2_HEADER_BYTES)
    // @types/node has one overload per mode, none for the union
    const cipher = cipherName === 'aes-256-gcm' ? createCipheriv(cipherName, aeadKey, nonce, { authTagLength: 16 }) : createCipheriv(cipherName, aeadKey, nonce, { authTagLength: 16 })
    cipher.setAAD(header, { plaintextLength: body.length })
    const ct = Buffer.concat([cipher.update(body), cipher.final()])
    return Buffer.concat([header, ct, cipher.getAuthTag()])
  }

  for (const cipher of SYNC_CIPHERS) {
    it(`a packet built from the spec with node:crypto's ${cipher} decodes`, () => {
      const nonce = Buffer.from('000102030405060708090a0b', 'hex')
      const result = decodeV2(handBuilt(nonce, cipher), decodeCtx(ring1))
      assert.ok(result.ok, reason(result))
      assert.deepEqual(result.message, newMessage(1_699_999_990))
      assert.equal(result.sequence, 7n)
    })

    it(`encodeV2 with ${cipher} produces exactly the spec bytes (fixed nonce)`, () => {
      const nonce = Buffer.from('0c0b0a090807060504030201', 'hex')
      const packet = encodeV2(newMessage(1_699_999_990), encodeCtx(ring1, { cipher, nextSequence: () => 7n, randomBytes: () => Buffer.from(nonce) }))
      assert.deepEqual(packet, handBuilt(nonce, cipher))
    })
  }

  it('the default cipher is ChaCha20-Poly1305 (version byte 3)', () => {
    const nonce = Buffer.from('0c0b0a090807060504030201', 'hex')
    const packet = encodeV2(newMessage(1_699_999_990), encodeCtx(ring1, { nextSequence: () => 7n, randomBytes: () => Buffer.from(nonce) }))
    assert.equal(packet[2], 3)
    assert.deepEqual(packet, handBuilt(nonce, 'chacha20-poly1305'))
  })

  it('the version byte is authenticated: a packet relabelled as the other cipher fails its tag', () => {
    for (const cipher of SYNC_CIPHERS) {
      const p = encodeV2(newMessage(), encodeCtx(ring1, { cipher }))
      p[2] = cipher === 'aes-256-gcm' ? 3 : 2
      assert.equal(reason(decodeV2(p, decodeCtx(ring1))), 'bad_tag', cipher)
    }
  })

  it('overhead is 59 bytes: 43 header + 16 tag', () => {
    assert.equal(V2_OVERHEAD_BYTES, 59)
    const packet = encodeV2({ op: 'del', sessionId: Buffer.alloc(1) }, encodeCtx(ring1))
    assert.equal(packet.length, 59 + 2)
  })

  it('a challenge is never bigger than the request it answers (no amplification): 83 bytes each', () => {
    const first = encodeV2({ op: 'snapshot-request', requestId: 1 }, encodeCtx(ring1))
    const cookie = { issuedAt: NOW_S, mac: Buffer.alloc(16, 0xab) }
    const challenge = encodeV2({ op: 'snapshot-challenge', requestId: 1, cookie }, encodeCtx(ring1))
    const echo = encodeV2({ op: 'snapshot-request', requestId: 1, cookie }, encodeCtx(ring1))
    assert.equal(first.length, 59 + 24)
    assert.ok(challenge.length <= first.length)
    assert.equal(echo.length, first.length)
    assert.equal(first[4], 3)
    assert.equal(challenge[4], 6)
  })

  it('SnapshotRequest and SnapshotChallenge bodies as the spec lays them out: request id u32 | cookie issued at u32 | 16-byte MAC', () => {
    const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b }
    const mac = Buffer.alloc(16, 0x3c)
    const open = (op: number, body: Buffer): DecodeResult => decodeV2(sealV2(op, body, encodeCtx(ring1)), decodeCtx(ring1))
    const first = open(3, Buffer.concat([u32(0x01020304), Buffer.alloc(20)]))
    assert.ok(first.ok, reason(first))
    assert.deepEqual(first.message, { op: 'snapshot-request', requestId: 0x01020304 })
    const echo = open(3, Buffer.concat([u32(9), u32(NOW_S), mac]))
    assert.ok(echo.ok, reason(echo))
    assert.deepEqual(echo.message, { op: 'snapshot-request', requestId: 9, cookie: { issuedAt: NOW_S, mac } })
    const challenge = open(6, Buffer.concat([u32(9), u32(NOW_S), mac]))
    assert.ok(challenge.ok, reason(challenge))
    assert.deepEqual(challenge.message, { op: 'snapshot-challenge', requestId: 9, cookie: { issuedAt: NOW_S, mac } })
  })
})

// --- rejections ---------------------------------------------------------------------------

describe('sync v2 rejections', () => {
  const valid = (): Buffer => encodeV2(newMessage(), encodeCtx(ring1))

  it('bad_magic', () => {
    assert.equal(reason(decodeV2(flipBit(valid(), 0), decodeCtx(ring1))), 'bad_magic')
    assert.equal(reason(decodeV2(flipBit(valid(), 1), decodeCtx(ring1))), 'bad_magic')
    assert.equal(reason(decodeV2(Buffer.from([0x00]), decodeCtx(ring1))), 'bad_magic')
    assert.equal(reason(decodeV2(Buffer.alloc(100, 0xff), decodeCtx(ring1))), 'bad_magic')
  })

  it('bad_version', () => {
    const p = valid()
    for (const version of [0, 1, 4, 0xff]) {
      p[2] = version
      assert.equal(reason(decodeV2(p, decodeCtx(ring1))), 'bad_version', `version ${version}`)
    }
  })

  it('truncated at every length, without touching the replay window', () => {
    const p = valid()
    const ctx = decodeCtx(ring1)
    for (let len = 0; len < p.length; len++) {
      assert.equal(reason(decodeV2(p.subarray(0, len), ctx)), 'truncated', `length ${len}`)
    }
    assert.equal(ctx.replay.size, 0)
    assert.ok(decodeV2(p, ctx).ok)
  })

  it('bad_length: trailing bytes after the tag', () => {
    const p = Buffer.concat([valid(), Buffer.from([0])])
    assert.equal(reason(decodeV2(p, decodeCtx(ring1))), 'bad_length')
  })

  it('oversized: a New over 1400 bytes, a chunk over the configured limit', () => {
    const big = Buffer.concat([valid(), Buffer.alloc(MAX_SMALL_PACKET_BYTES)]).subarray(0, MAX_SMALL_PACKET_BYTES + 1)
    assert.equal(reason(decodeV2(big, decodeCtx(ring1))), 'oversized')

    const chunk: SyncMessage = {
      op: 'snapshot-chunk', requestId: 1, last: true,
      sessions: Array.from({ length: 20 }, (_, i) => ({ sessionId: Buffer.alloc(32, i), session: Buffer.alloc(400, i), createdAt: NOW_S }))
    }
    const packet = encodeV2(chunk, encodeCtx(ring1, { maxPacketBytes: 16_000 }))
    assert.ok(packet.length > MAX_SMALL_PACKET_BYTES)
    assert.ok(decodeV2(packet, decodeCtx(ring1, { maxPacketBytes: packet.length })).ok)
    assert.equal(reason(decodeV2(packet, decodeCtx(ring1, { maxPacketBytes: packet.length - 1 }))), 'oversized')
    assert.equal(reason(decodeV2(Buffer.alloc(MAX_UDP_PAYLOAD_BYTES + 1), decodeCtx(ring1, { maxPacketBytes: 1e9 }))), 'oversized')
  })

  it('the encoder refuses what would be oversized', () => {
    const huge = { op: 'new', sessionId, session: Buffer.alloc(1400), createdAt: NOW_S } as const
    assert.throws(() => encodeV2(huge, encodeCtx(ring1)), RangeError)
    const fits = { op: 'new', sessionId, session: Buffer.alloc(MAX_SMALL_PACKET_BYTES - V2_OVERHEAD_BYTES - 39), createdAt: NOW_S } as const
    assert.equal(encodeV2(fits, encodeCtx(ring1)).length, MAX_SMALL_PACKET_BYTES)
    const chunk: SyncMessage = { op: 'snapshot-chunk', requestId: 1, last: true, sessions: [{ sessionId, session: Buffer.alloc(3000), createdAt: NOW_S }] }
    assert.throws(() => encodeV2(chunk, encodeCtx(ring1, { maxPacketBytes: 2000 })), /over the 2000-byte limit/)
  })

  it('bad_op', () => {
    for (const op of [0, 5, 255]) {
      const p = valid()
      p[4] = op
      assert.equal(reason(decodeV2(p, decodeCtx(ring1))), 'bad_op', `op ${op}`)
    }
  })

  it('unknown_key', () => {
    const p = encodeV2(newMessage(), encodeCtx(new FarmKeyRing([key2])))
    assert.equal(reason(decodeV2(p, decodeCtx(ring1))), 'unknown_key')
  })

  it('own: our own node id (multicast loopback), only once the tag is checked', () => {
    const p = valid()
    assert.equal(reason(decodeV2(p, decodeCtx(ring1, { ownNodeId: nodeA }))), 'own')
    // Anyone can write our node id (a hash of our name) into a packet: without the tag it is a forgery.
    const forged = Buffer.from(p)
    forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 1
    assert.equal(reason(decodeV2(forged, decodeCtx(ring1, { ownNodeId: nodeA }))), 'bad_tag')
  })

  it('bad_tag: a bit flipped in the header, the ciphertext or the tag', () => {
    const p = valid()
    // node id, sequence, sent-at, nonce, ciphertext start/end, tag start/end
    const offsets = [5, 12, 13, 20, 21, 28, 31, 42, V2_HEADER_BYTES, p.length - 17, p.length - 16, p.length - 1]
    for (const offset of offsets) {
      for (const bit of [0, 7]) {
        const ctx = decodeCtx(ring1)
        assert.equal(reason(decodeV2(flipBit(p, offset, bit), ctx)), 'bad_tag', `offset ${offset} bit ${bit}`)
        assert.equal(ctx.replay.size, 0)
      }
    }
  })

  it('bad_tag: another secret under the same key id', () => {
    const other = new FarmKeyRing([{ id: 1, secret: Buffer.alloc(32, 0x12) }])
    assert.equal(reason(decodeV2(valid(), decodeCtx(other))), 'bad_tag')
  })

  it('a forged packet does not advance the replay window', () => {
    const ctx = decodeCtx(ring1)
    const enc = encodeCtx(ring1)
    const first = encodeV2(newMessage(), enc)
    const second = encodeV2(newMessage(), enc)
    // forge: sequence pushed far ahead (would slide the window past `first` if it counted)
    const forged = Buffer.from(second)
    forged.writeBigUInt64BE(BigInt(NOW) * 1000n + 100_000n, 13)
    assert.equal(reason(decodeV2(forged, ctx)), 'bad_tag')
    assert.equal(ctx.replay.size, 0)
    assert.ok(decodeV2(second, ctx).ok)
    assert.ok(decodeV2(first, ctx).ok, 'older packet still inside the window')
  })

  it('replay of an accepted packet', () => {
    const ctx = decodeCtx(ring1)
    const p = valid()
    assert.ok(decodeV2(p, ctx).ok)
    assert.equal(reason(decodeV2(p, ctx)), 'replay')
    assert.equal(reason(decodeV2(Buffer.from(p), ctx)), 'replay')
  })

  it('out-of-order delivery inside the window is accepted once each', () => {
    const enc = encodeCtx(ring1)
    const packets = Array.from({ length: 5 }, () => encodeV2({ op: 'del', sessionId }, enc))
    const ctx = decodeCtx(ring1)
    for (const i of [4, 0, 2, 1, 3]) assert.ok(decodeV2(packets[i] as Buffer, ctx).ok, `packet ${i}`)
    for (const p of packets) assert.equal(reason(decodeV2(p, ctx)), 'replay')
  })

  it('stale: sent or created longer ago than the session lifetime', () => {
    const oldSend = encodeV2({ op: 'del', sessionId }, encodeCtx(ring1, { now: () => NOW - LIFETIME * 1000 - 1 }))
    assert.equal(reason(decodeV2(oldSend, decodeCtx(ring1))), 'stale')
    const edgeSend = encodeV2({ op: 'del', sessionId }, encodeCtx(ring1, { now: () => NOW - LIFETIME * 1000 }))
    assert.ok(decodeV2(edgeSend, decodeCtx(ring1)).ok)

    assert.equal(reason(decodeV2(encodeV2(newMessage(NOW_S - LIFETIME - 1), encodeCtx(ring1)), decodeCtx(ring1))), 'stale')
    assert.ok(decodeV2(encodeV2(newMessage(NOW_S - LIFETIME), encodeCtx(ring1)), decodeCtx(ring1)).ok)
  })

  it('future: sent or created further ahead than the skew', () => {
    const ahead = encodeV2({ op: 'del', sessionId }, encodeCtx(ring1, { now: () => NOW + SKEW * 1000 + 1 }))
    assert.equal(reason(decodeV2(ahead, decodeCtx(ring1))), 'future')
    const edge = encodeV2({ op: 'del', sessionId }, encodeCtx(ring1, { now: () => NOW + SKEW * 1000 }))
    assert.ok(decodeV2(edge, decodeCtx(ring1)).ok)

    assert.equal(reason(decodeV2(encodeV2(newMessage(NOW_S + SKEW + 1), encodeCtx(ring1)), decodeCtx(ring1))), 'future')
    assert.ok(decodeV2(encodeV2(newMessage(NOW_S + SKEW), encodeCtx(ring1)), decodeCtx(ring1)).ok)
  })

  it('a rejected stale/future packet does not consume its sequence number', () => {
    const ctx = decodeCtx(ring1)
    const p = encodeV2(newMessage(NOW_S + 60), encodeCtx(ring1))
    assert.equal(reason(decodeV2(p, ctx)), 'future')
    assert.equal(ctx.replay.size, 0)
  })

  it('snapshot chunk: stale entries are dropped, a future entry rejects the chunk', () => {
    const fresh = { sessionId: Buffer.alloc(32, 1), session: der, createdAt: NOW_S - 5 }
    const stale = { sessionId: Buffer.alloc(32, 2), session: der, createdAt: NOW_S - LIFETIME - 1 }
    const future = { sessionId: Buffer.alloc(32, 3), session: der, createdAt: NOW_S + SKEW + 1 }
    const ok = decodeV2(encodeV2({ op: 'snapshot-chunk', requestId: 9, last: true, sessions: [stale, fresh] }, encodeCtx(ring1)), decodeCtx(ring1))
    assert.ok(ok.ok && ok.message.op === 'snapshot-chunk')
    assert.deepEqual(ok.message.sessions, [fresh])
    const bad = decodeV2(encodeV2({ op: 'snapshot-chunk', requestId: 9, last: true, sessions: [fresh, future] }, encodeCtx(ring1)), decodeCtx(ring1))
    assert.equal(reason(bad), 'future')
  })

  it('bad_body: authenticated but malformed bodies, window untouched', () => {
    const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b }
    const u16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b }
    const entry = Buffer.concat([Buffer.from([4]), Buffer.alloc(4, 1), u32(NOW_S), u16(3), Buffer.alloc(3, 2)])
    const cases: Array<[number, Buffer, string]> = [
      [1, Buffer.alloc(0), 'new: empty'],
      [1, Buffer.concat([Buffer.from([0]), u32(NOW_S), u16(1), Buffer.from([1])]), 'new: empty session id'],
      [1, Buffer.concat([Buffer.from([33]), Buffer.alloc(33), u32(NOW_S), u16(1), Buffer.from([1])]), 'new: 33-byte session id'],
      [1, Buffer.concat([Buffer.from([4]), Buffer.alloc(4), u32(NOW_S), u16(0)]), 'new: empty DER'],
      [1, Buffer.concat([Buffer.from([4]), Buffer.alloc(4), u32(NOW_S), u16(5), Buffer.alloc(4)]), 'new: DER shorter than its length'],
      [1, Buffer.concat([entry, Buffer.from([0])]), 'new: trailing byte'],
      [2, Buffer.from([5, 1, 2, 3, 4]), 'del: id shorter than its length'],
      [2, Buffer.from([2, 1, 2, 3]), 'del: trailing byte'],
      [3, Buffer.from([0, 0, 1]), 'request: 3 bytes'],
      [3, Buffer.from([0, 0, 0, 1]), 'request: 4 bytes (a node from before cookies)'],
      [3, Buffer.concat([u32(1), u32(0), Buffer.alloc(15), Buffer.from([1])]), 'request: no cookie time but MAC bytes'],
      [3, Buffer.concat([u32(1), u32(NOW_S), Buffer.alloc(16), Buffer.from([0])]), 'request: trailing byte'],
      [6, Buffer.concat([u32(1), u32(0), Buffer.alloc(16)]), 'challenge: no cookie'],
      [6, Buffer.concat([u32(1), u32(NOW_S), Buffer.alloc(15)]), 'challenge: short MAC'],
      [4, Buffer.concat([u32(1), Buffer.from([0x02]), u16(0)]), 'chunk: reserved flag bit'],
      [4, Buffer.concat([u32(1), Buffer.from([0x01]), u16(2), entry]), 'chunk: count says 2, one entry'],
      [4, Buffer.concat([u32(1), Buffer.from([0x01]), u16(1), entry, entry]), 'chunk: count says 1, two entries'],
      [4, Buffer.concat([u32(1), Buffer.from([0x01])]), 'chunk: no count']
    ]
    for (const [op, body, what] of cases) {
      const ctx = decodeCtx(ring1)
      assert.equal(reason(decodeV2(sealV2(op, body, encodeCtx(ring1)), ctx)), 'bad_body', what)
      assert.equal(ctx.replay.size, 0, what)
    }
    // the same framing with a well-formed body is accepted (the cases above fail for their body)
    const okChunk = sealV2(4, Buffer.concat([u32(1), Buffer.from([0x01]), u16(1), entry]), encodeCtx(ring1))
    assert.ok(decodeV2(okChunk, decodeCtx(ring1)).ok)
  })
})

// --- keys ---------------------------------------------------------------------------------

describe('sync v2 key rotation', () => {
  it('both keys accepted during the change-over; only the current key sends', () => {
    const before = new FarmKeyRing([key1, key2], 1)
    const after = new FarmKeyRing([key1, key2], 2)
    const p1 = encodeV2(newMessage(), encodeCtx(before))
    const p2 = encodeV2(newMessage(), encodeCtx(after, { nodeId: Buffer.from('c1c2c3c4c5c6c7c8', 'hex') }))
    assert.equal(p1[3], 1)
    assert.equal(p2[3], 2)
    for (const receiver of [before, after]) {
      const ctx = decodeCtx(receiver)
      const r1 = decodeV2(p1, ctx)
      const r2 = decodeV2(p2, ctx)
      assert.ok(r1.ok && r2.ok)
      assert.equal(r1.keyId, 1)
      assert.equal(r2.keyId, 2)
    }
    // once key 1 is dropped, its packets are refused
    const dropped = new FarmKeyRing([key2])
    assert.equal(reason(decodeV2(p1, decodeCtx(dropped))), 'unknown_key')
    assert.ok(decodeV2(p2, decodeCtx(dropped)).ok)
  })

  it('the default current key is the first one', () => {
    assert.equal(new FarmKeyRing([key2, key1]).current().id, 2)
    assert.deepEqual(new FarmKeyRing([key2, key1]).ids(), [2, 1])
  })
})

describe('farm keys', () => {
  it('refuses short secrets, bad ids, duplicates and an unknown current id', () => {
    assert.throws(() => new FarmKeyRing([{ id: 1, secret: Buffer.alloc(31) }]), /at least 32 bytes, got 31/)
    assert.throws(() => new FarmKeyRing([{ id: 256, secret: Buffer.alloc(32) }]), /0 to 255/)
    assert.throws(() => new FarmKeyRing([{ id: -1, secret: Buffer.alloc(32) }]), /0 to 255/)
    assert.throws(() => new FarmKeyRing([key1, { id: 1, secret: Buffer.alloc(32, 9) }]), /appears twice/)
    assert.throws(() => new FarmKeyRing([key1], 2), /current key id 2/)
    assert.throws(() => new FarmKeyRing([]), /at least one key/)
  })

  it('HKDF: deterministic, distinct per label and per secret', () => {
    const a = deriveKey(key1, 'tlsfleet sync v2 aead', 32)
    assert.deepEqual(a, deriveKey(key1, 'tlsfleet sync v2 aead', 32))
    assert.deepEqual(a, ring1.current().aesKey)
    // One key per cipher, never the same bytes under two AEADs.
    assert.deepEqual(ring1.current().chachaKey, deriveKey(key1, FARM_KEY_LABELS.syncChaCha, 32))
    assert.notDeepEqual(ring1.current().chachaKey, a)
    assert.notDeepEqual(a, deriveKey(key1, 'tlsfleet tls ticket keys', 32))
    assert.notDeepEqual(a, deriveKey({ id: 1, secret: Buffer.alloc(32, 0x12) }, FARM_KEY_LABELS.syncAead, 32))
    assert.equal(deriveKey(key1, 'x', 48).length, 48)
    assert.deepEqual(ring1.current().derive('tlsfleet tls ticket keys', 48), deriveKey(key1, 'tlsfleet tls ticket keys', 48))
    assert.throws(() => deriveKey(key1, '', 32), /purpose/)
    assert.throws(() => deriveKey(key1, 'x', 0), /length/)
  })

  it('fingerprint: equal for equal secrets, 16 hex chars, not the AEAD key', () => {
    const fp = ring1.current().fingerprint
    assert.match(fp, /^[0-9a-f]{16}$/)
    assert.equal(new FarmKeyRing([{ id: 7, secret: Buffer.from(key1.secret) }]).current().fingerprint, fp)
    assert.notEqual(new FarmKeyRing([key2]).current().fingerprint, fp)
    assert.ok(!ring1.current().aesKey.toString('hex').includes(fp))
  })

  it('a later change to the caller\'s secret buffer does not change the ring', () => {
    const secret = Buffer.alloc(32, 0x33)
    const ring = new FarmKeyRing([{ id: 3, secret }])
    const before = Buffer.from(ring.current().aesKey)
    secret.fill(0)
    assert.deepEqual(ring.current().derive(FARM_KEY_LABELS.syncAead, 32), before)
  })
})

describe('sync v2 encoder input checks', () => {
  it('throws a clear error for bad messages and contexts', () => {
    const ctx = encodeCtx(ring1)
    assert.throws(() => encodeV2({ op: 'new', sessionId: Buffer.alloc(33), session: der, createdAt: NOW_S }, ctx), /session id must be 1 to 32 bytes/)
    assert.throws(() => encodeV2({ op: 'new', sessionId: Buffer.alloc(0), session: der, createdAt: NOW_S }, ctx), /session id/)
    assert.throws(() => encodeV2({ op: 'new', sessionId, session: Buffer.alloc(0), createdAt: NOW_S }, ctx), /DER session/)
    assert.throws(() => encodeV2({ op: 'new', sessionId, session: der, createdAt: -1 }, ctx), /createdAt/)
    assert.throws(() => encodeV2({ op: 'del', sessionId: Buffer.alloc(40) }, ctx), /session id/)
    assert.throws(() => encodeV2({ op: 'snapshot-request', requestId: 2 ** 32 }, ctx), /requestId/)
    assert.throws(() => encodeV2({ op: 'snapshot-request', requestId: 1, cookie: { issuedAt: 0, mac: Buffer.alloc(16) } }, ctx), /cookie/)
    assert.throws(() => encodeV2({ op: 'snapshot-challenge', requestId: 1, cookie: { issuedAt: 5, mac: Buffer.alloc(8) } }, ctx), /cookie/)
    assert.throws(() => encodeV2({ op: 'del', sessionId }, { ...ctx, nodeId: Buffer.alloc(7) }), /node id must be 8 bytes/)
    assert.throws(() => encodeV2({ op: 'del', sessionId }, { ...ctx, nextSequence: () => -1n }), /sequence/)
  })

  it('createSequenceCounter starts at ms * 1000 and counts up', () => {
    const next = createSequenceCounter(1234)
    assert.equal(next(), 1_234_000n)
    assert.equal(next(), 1_234_001n)
  })
})

// --- floors across restarts ---------------------------------------------------------------

describe('sync v2 not-before floors', () => {
  const at = (sentAt: number, msg: SyncMessage = newMessage()): Buffer => encodeV2(msg, encodeCtx(ring1, { now: () => sentAt, nextSequence: createSequenceCounter(sentAt) }))
  const cookie = { issuedAt: NOW_S, mac: Buffer.alloc(16, 1) }

  it('updates and requests dated at or before notBeforeMs are before_start; the window stays untouched', () => {
    for (const msg of [newMessage(), { op: 'del', sessionId } as const, { op: 'snapshot-request', requestId: 1 } as const]) {
      const ctx = decodeCtx(ring1, { notBeforeMs: NOW - 1000 })
      assert.equal(reason(decodeV2(at(NOW - 1000, msg), ctx)), 'before_start', msg.op)
      assert.equal(ctx.replay.size, 0)
      assert.ok(decodeV2(at(NOW - 999, msg), ctx).ok, msg.op)
    }
  })

  it('challenges and chunks answer this process\'s own request ids: only repliesNotBeforeMs applies to them', () => {
    const ctx = decodeCtx(ring1, { notBeforeMs: NOW + 2000, repliesNotBeforeMs: NOW - 5000 })
    assert.ok(decodeV2(at(NOW - 10, { op: 'snapshot-challenge', requestId: 1, cookie }), ctx).ok)
    assert.ok(decodeV2(at(NOW - 11, { op: 'snapshot-chunk', requestId: 1, sessions: [], last: true }), ctx).ok)
    assert.equal(reason(decodeV2(at(NOW - 5000, { op: 'snapshot-chunk', requestId: 1, sessions: [], last: true }), ctx)), 'before_start')
    assert.equal(reason(decodeV2(at(NOW - 12), ctx)), 'before_start')
  })

  it('beforeAccept sees each accepted packet\'s date before the window records it, and no refused one', () => {
    const seen: number[] = []
    const ctx = decodeCtx(ring1, { notBeforeMs: NOW - 3000 })
    ctx.beforeAccept = (sentAtMs) => { seen.push(sentAtMs); assert.equal(ctx.replay.size, 0, 'called before the commit') }
    const packet = at(NOW - 100)
    assert.ok(decodeV2(packet, ctx).ok)
    assert.equal(reason(decodeV2(packet, ctx)), 'replay')
    assert.equal(reason(decodeV2(at(NOW - 4000), ctx)), 'before_start')
    assert.deepEqual(seen, [NOW - 100])
  })
})
