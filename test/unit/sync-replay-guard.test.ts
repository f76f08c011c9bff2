import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { ReplayGuard } from '../../src/sync/replay-guard.js'

const A = Buffer.from('0101010101010101', 'hex')
const B = Buffer.from('0202020202020202', 'hex')
const C = Buffer.from('0303030303030303', 'hex')
const T = 1_700_000_000_000

/** check + commit, like decodeV2 does for an authenticated packet. */
function accept (guard: ReplayGuard, sender: Buffer, seq: bigint, sentAt = T): boolean {
  if (!guard.check(sender, seq, sentAt)) return false
  guard.commit(sender, seq, sentAt)
  return true
}

describe('replay guard window', () => {
  it('accepts a sequence once', () => {
    const g = new ReplayGuard()
    assert.equal(accept(g, A, 10n), true)
    assert.equal(accept(g, A, 10n), false)
    assert.equal(accept(g, A, 11n), true)
    assert.equal(accept(g, A, 11n), false)
  })

  it('check() alone changes nothing', () => {
    const g = new ReplayGuard()
    assert.equal(g.check(A, 5n, T), true)
    assert.equal(g.check(A, 5n, T), true)
    assert.equal(g.size, 0)
  })

  it('senders are independent', () => {
    const g = new ReplayGuard()
    assert.equal(accept(g, A, 7n), true)
    assert.equal(accept(g, B, 7n), true)
    assert.equal(accept(g, A, 7n), false)
    assert.equal(g.size, 2)
  })

  it('out of order within the window: each accepted once', () => {
    const g = new ReplayGuard({ windowBits: 64 })
    assert.equal(accept(g, A, 100n), true)
    for (const s of [99n, 37n, 50n, 98n]) assert.equal(accept(g, A, s), true, `seq ${s}`)
    for (const s of [99n, 37n, 50n, 98n, 100n]) assert.equal(accept(g, A, s), false, `seq ${s} again`)
  })

  it('below the window is refused; the window edge is exact', () => {
    const g = new ReplayGuard() // 1024 bits
    assert.equal(accept(g, A, 5000n), true)
    assert.equal(g.check(A, 5000n - 1023n, T), true, 'oldest slot still inside')
    assert.equal(g.check(A, 5000n - 1024n, T), false, 'first slot outside')
    assert.equal(g.check(A, 0n, T), false)
  })

  it('sliding forward clears the slots it passes over', () => {
    const g = new ReplayGuard({ windowBits: 32 })
    for (let s = 0n; s < 32n; s++) assert.equal(accept(g, A, s), true)
    // move forward by 20: sequences 32..51 reuse the slots of 0..19, which must read as unseen
    assert.equal(accept(g, A, 51n), true)
    for (let s = 32n; s < 51n; s++) assert.equal(accept(g, A, s), true, `seq ${s}`)
    for (let s = 20n; s < 32n; s++) assert.equal(accept(g, A, s), false, `seq ${s} still remembered`)
    // a jump larger than the window forgets everything below it
    assert.equal(accept(g, A, 1000n), true)
    assert.equal(accept(g, A, 999n), true)
    assert.equal(accept(g, A, 968n), false, 'below the window')
  })

  it('handles 64-bit sequences', () => {
    const g = new ReplayGuard()
    const max = (1n << 64n) - 1n
    assert.equal(accept(g, A, max - 1n), true)
    assert.equal(accept(g, A, max), true)
    assert.equal(accept(g, A, max), false)
    assert.equal(accept(g, A, max - 1n), false)
  })

  it('refuses bad options', () => {
    assert.throws(() => new ReplayGuard({ windowBits: 100 }), /multiple of 32/)
    assert.throws(() => new ReplayGuard({ maxSenders: 0 }), /maxSenders/)
  })
})

describe('replay guard eviction', () => {
  it('keeps at most maxSenders, least recently accepted goes first', () => {
    const g = new ReplayGuard({ maxSenders: 2 })
    accept(g, A, 1n, T)
    accept(g, B, 1n, T + 10)
    accept(g, A, 2n, T + 20) // A is now the most recent
    accept(g, C, 1n, T + 30) // evicts B
    assert.equal(g.size, 2)
    assert.equal(g.horizonMs, T + 10)
    assert.equal(accept(g, A, 2n, T + 20), false, 'A still tracked')
  })

  it('an evicted sender cannot be replayed: only packets sent after the horizon pass', () => {
    const g = new ReplayGuard({ maxSenders: 1 })
    assert.equal(accept(g, A, 1n, T), true)
    assert.equal(accept(g, A, 2n, T + 5), true)
    assert.equal(accept(g, B, 1n, T + 6), true) // evicts A, horizon = T + 5
    assert.equal(g.horizonMs, T + 5)
    assert.equal(g.check(A, 1n, T), false, 'old packet of A')
    assert.equal(g.check(A, 2n, T + 5), false, 'last packet of A')
    assert.equal(g.check(A, 3n, T + 6), true, 'new packet of A')
    // an unknown sender is held to the same horizon
    assert.equal(g.check(C, 1n, T + 5), false)
    assert.equal(g.check(C, 1n, T + 7), true)
  })

  it('before any eviction, unknown senders are accepted whatever their time', () => {
    const g = new ReplayGuard()
    assert.equal(g.horizonMs, -Infinity)
    assert.equal(g.check(A, 0n, 0), true)
  })
})

describe('replay guard marks (what a restart carries over)', () => {
  it('restored marks refuse everything at or below each sender\'s highest, accept what follows', () => {
    const before = new ReplayGuard()
    accept(before, A, 100n, T)
    accept(before, A, 90n, T + 1) // out of order, within the window
    accept(before, B, 7n, T + 2)
    const marks = before.marks()
    assert.deepEqual([...marks.senders.entries()], [[A.toString('hex'), { highest: 100n, lastSentAtMs: T + 1 }], [B.toString('hex'), { highest: 7n, lastSentAtMs: T + 2 }]])
    const after = new ReplayGuard()
    after.restore(marks)
    for (const s of [100n, 90n, 95n, 1n]) assert.equal(after.check(A, s, T + 10), false, `A ${s}`)
    assert.equal(after.check(B, 7n, T + 10), false)
    assert.equal(accept(after, A, 101n, T + 10), true)
    assert.equal(accept(after, B, 8n, T + 10), true)
    assert.equal(after.check(C, 1n, T), true, 'an unknown sender is new')
  })

  it('restoring more than maxSenders sends the least recently heard to the horizon', () => {
    const g = new ReplayGuard({ maxSenders: 1 })
    g.restore({ senders: new Map([[A.toString('hex'), { highest: 5n, lastSentAtMs: T + 50 }], [B.toString('hex'), { highest: 9n, lastSentAtMs: T + 10 }]]), horizonMs: T })
    assert.equal(g.size, 1)
    assert.equal(g.horizonMs, T + 10)
    assert.equal(g.check(A, 5n, T + 60), false, 'A kept, its mark holds')
    assert.equal(g.check(B, 10n, T + 10), false, 'B evicted: held to the horizon')
    assert.equal(g.check(B, 10n, T + 11), true)
  })
})
