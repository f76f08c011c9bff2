import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { FarmKeyRing } from '../../src/sync/farm-keys.js'
import { ReplayGuard } from '../../src/sync/replay-guard.js'
import { isRejectReason } from '../../src/sync/reject-reasons.js'
import { decodeStud, encodeStud, type StudDecodeContext } from '../../src/sync/wire-stud.js'
import {
  createSequenceCounter, decodeV2, encodeV2, V2_MAGIC, V2_VERSION,
  type DecodeContext, type EncodeContext, type SyncMessage
} from '../../src/sync/wire-v2.js'

const NOW = 1_700_000_000_000
const NOW_S = NOW / 1000
const RUNS = 2000

const ring = new FarmKeyRing([{ id: 1, secret: Buffer.alloc(32, 0x11) }, { id: 2, secret: Buffer.alloc(32, 0x22) }])
const sender = Buffer.from('a1a2a3a4a5a6a7a8', 'hex')
const studKey = Buffer.alloc(20, 0x42)

const encodeCtx = (): EncodeContext => ({ keyRing: ring, nodeId: sender, nextSequence: createSequenceCounter(NOW), now: () => NOW })
const decodeCtx = (): DecodeContext => ({
  keyRing: ring,
  ownNodeId: Buffer.alloc(8),
  replay: new ReplayGuard(),
  now: () => NOW,
  sessionLifetimeSeconds: 300,
  maxSkewSeconds: 5,
  maxPacketBytes: 65507
})
const studCtx: StudDecodeContext = { hmacKey: studKey, now: () => NOW, sessionTimeoutSeconds: 300 }

const bytes = (min: number, max: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a))
const entry = fc.record({ sessionId: bytes(1, 32), session: bytes(1, 300), createdAt: fc.integer({ min: NOW_S - 300, max: NOW_S + 5 }) })
const message: fc.Arbitrary<SyncMessage> = fc.oneof(
  entry.map((e) => ({ op: 'new' as const, ...e })),
  bytes(1, 32).map((sessionId) => ({ op: 'del' as const, sessionId })),
  fc.nat({ max: 0xffffffff }).map((requestId) => ({ op: 'snapshot-request' as const, requestId })),
  fc.record({ requestId: fc.nat({ max: 0xffffffff }), issuedAt: fc.integer({ min: 1, max: 0xffffffff }), mac: bytes(16, 16) })
    .map(({ requestId, issuedAt, mac }) => ({ op: 'snapshot-challenge' as const, requestId, cookie: { issuedAt, mac } })),
  fc.record({ requestId: fc.nat({ max: 0xffffffff }), sessions: fc.array(entry, { maxLength: 4 }), last: fc.boolean() })
    .map((m) => ({ op: 'snapshot-chunk' as const, ...m }))
)

type Mutation =
  | { kind: 'set'; edits: Array<{ at: number; value: number }> }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; extra: Buffer }
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }).map((edits) => ({ kind: 'set' as const, edits })),
  fc.nat().map((at) => ({ kind: 'truncate' as const, at })),
  bytes(1, 16).map((extra) => ({ kind: 'append' as const, extra }))
)

function mutate (packet: Buffer, m: Mutation): Buffer {
  switch (m.kind) {
    case 'set': {
      const copy = Buffer.from(packet)
      for (const e of m.edits) copy[e.at % copy.length] = e.value
      return copy
    }
    case 'truncate': return packet.subarray(0, m.at % packet.length)
    case 'append': return Buffer.concat([packet, m.extra])
  }
}

describe('sync decoders under random input (fast-check)', () => {
  it('decodeV2: random buffers never throw and are never accepted', () => {
    const ctx = decodeCtx()
    fc.assert(fc.property(bytes(0, 1500), (buf) => {
      const r = decodeV2(buf, ctx)
      return !r.ok && isRejectReason(r.reason)
    }), { numRuns: RUNS })
  })

  it('decodeV2: random bodies behind a valid magic/version/op header are never accepted', () => {
    const ctx = decodeCtx()
    fc.assert(fc.property(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 3 }), bytes(0, 600), (op, keyId, rest) => {
      const buf = Buffer.concat([V2_MAGIC, Buffer.from([V2_VERSION, keyId, op]), rest])
      const r = decodeV2(buf, ctx)
      return !r.ok && isRejectReason(r.reason)
    }), { numRuns: RUNS })
  })

  it('decodeV2: every mutation of a valid packet is rejected, the unmutated one accepted', () => {
    const enc = encodeCtx()
    fc.assert(fc.property(message, mutation, (msg, m) => {
      const packet = encodeV2(msg, enc)
      const mutated = mutate(packet, m)
      const r = decodeV2(mutated, decodeCtx())
      if (mutated.equals(packet)) return r.ok // the no-op mutation
      return !r.ok && isRejectReason(r.reason)
    }), { numRuns: RUNS })
  })

  it('decodeStud: random buffers never throw and are never accepted', () => {
    fc.assert(fc.property(bytes(0, 700), (buf) => {
      const r = decodeStud(buf, studCtx)
      return !r.ok && isRejectReason(r.reason)
    }), { numRuns: RUNS })
  })

  it('decodeStud: every mutation of a valid packet is rejected, the unmutated one accepted', () => {
    const studMessage = fc.record({ sessionId: bytes(1, 32), session: bytes(1, 512), createdAt: fc.integer({ min: NOW_S - 299, max: NOW_S + 299 }) })
    fc.assert(fc.property(studMessage, mutation, (msg, m) => {
      const packet = encodeStud({ op: 'new', ...msg }, studKey)
      const mutated = mutate(packet, m)
      const r = decodeStud(mutated, studCtx)
      if (mutated.equals(packet)) return r.ok
      return !r.ok && isRejectReason(r.reason)
    }), { numRuns: RUNS })
  })

  it('replay guard: no (sender, sequence) is ever accepted twice; anything above the highest is', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.bigInt({ min: 0n, max: 3000n })), { maxLength: 200 }), (events) => {
      const guard = new ReplayGuard({ windowBits: 64 })
      const seen = new Set<string>()
      const highest = new Map<number, bigint>()
      for (const [s, seq] of events) {
        const id = Buffer.alloc(8, s)
        const fresh = guard.check(id, seq, NOW)
        const key = `${s}:${seq}`
        if (seen.has(key) && fresh) return false
        const top = highest.get(s)
        if ((top === undefined || seq > top) && !fresh) return false
        if (fresh) {
          guard.commit(id, seq, NOW)
          seen.add(key)
          if (top === undefined || seq > top) highest.set(s, seq)
        }
      }
      return true
    }), { numRuns: 500 })
  })

  it('decoders never throw, even when asserting by hand', () => {
    // a deterministic sweep over short inputs that property runs may not all hit
    const ctx = decodeCtx()
    for (let len = 0; len < 80; len++) {
      for (const fill of [0x00, 0x54, 0xff]) {
        const buf = Buffer.alloc(len, fill)
        if (len > 0) buf[0] = 0x54
        if (len > 1) buf[1] = 0x46
        if (len > 2) buf[2] = 2
        assert.equal(decodeV2(buf, ctx).ok, false)
        assert.equal(decodeStud(buf, studCtx).ok, false)
      }
    }
  })
})
