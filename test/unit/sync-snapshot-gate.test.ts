import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { SnapshotGate, type GateDecision, type SnapshotRequester } from '../../src/sync/snapshot-gate.js'
import type { SnapshotCookie } from '../../src/sync/wire-v2.js'

const joiner: SnapshotRequester = { address: '10.0.0.12', port: 8446, nodeId: 'a1a2a3a4a5a6a7a8' }
const T = 1_700_000_000_000

function cookieOf (decision: GateDecision): SnapshotCookie {
  assert.equal(decision.action, 'challenge')
  return (decision as { cookie: SnapshotCookie }).cookie
}

describe('snapshot gate', () => {
  it('a first request earns a challenge only; its cookie echoed from the same address earns the snapshot', () => {
    const gate = new SnapshotGate({ now: () => T })
    const cookie = cookieOf(gate.decide({ requestId: 7 }, joiner))
    assert.equal(cookie.mac.length, 16)
    assert.equal(cookie.issuedAt, Math.floor(T / 1000))
    assert.deepEqual(gate.decide({ requestId: 7, cookie }, joiner), { action: 'answer' })
  })

  it('a cookie is bound to the address, port, node id and request id, and to the gate that made it', () => {
    const gate = new SnapshotGate({ now: () => T })
    const cookie = cookieOf(gate.decide({ requestId: 7 }, joiner))
    const refused = { action: 'refuse', reason: 'bad_cookie' }
    assert.deepEqual(gate.decide({ requestId: 7, cookie }, { ...joiner, address: '10.0.0.66' }), refused)
    assert.deepEqual(gate.decide({ requestId: 7, cookie }, { ...joiner, port: 8447 }), refused)
    assert.deepEqual(gate.decide({ requestId: 7, cookie }, { ...joiner, nodeId: 'b1b2b3b4b5b6b7b8' }), refused)
    assert.deepEqual(gate.decide({ requestId: 8, cookie }, joiner), refused)
    assert.deepEqual(gate.decide({ requestId: 7, cookie: { ...cookie, issuedAt: cookie.issuedAt - 1 } }, joiner), refused)
    assert.deepEqual(new SnapshotGate({ now: () => T }).decide({ requestId: 7, cookie }, joiner), refused, 'another process (a restart) does not know it')
  })

  it('a cookie lives 10 s; one from the future is refused', () => {
    const clock = { now: T }
    const gate = new SnapshotGate({ now: () => clock.now })
    const cookie = cookieOf(gate.decide({ requestId: 1 }, joiner))
    clock.now = T + 11_000
    assert.deepEqual(gate.decide({ requestId: 1, cookie }, joiner), { action: 'refuse', reason: 'bad_cookie' })
    clock.now = T - 2000
    assert.deepEqual(gate.decide({ requestId: 1, cookie }, joiner), { action: 'refuse', reason: 'bad_cookie' })
    clock.now = T + 9000
    assert.deepEqual(gate.decide({ requestId: 1, cookie }, joiner), { action: 'answer' })
  })

  it('verified requesters: a burst per address, then one per refill period; and a cap on snapshots at once', () => {
    const clock = { now: T }
    const gate = new SnapshotGate({ now: () => clock.now, burst: 2, refillMs: 5000, maxConcurrent: 10 })
    const verified = (who = joiner): GateDecision => {
      const decision = gate.decide({ requestId: 3, cookie: cookieOf(gate.decide({ requestId: 3 }, who)) }, who)
      gate.release()
      return decision
    }
    assert.equal(verified().action, 'answer')
    assert.equal(verified().action, 'answer')
    assert.deepEqual(verified(), { action: 'refuse', reason: 'rate_limited' })
    assert.equal(verified({ ...joiner, address: '10.0.0.13' }).action, 'answer', 'another address has its own bucket')
    clock.now = T + 5000
    assert.equal(verified().action, 'answer')
    assert.deepEqual(verified(), { action: 'refuse', reason: 'rate_limited' })

    const busy = new SnapshotGate({ now: () => T, maxConcurrent: 1 })
    const ask = (who: SnapshotRequester): GateDecision => busy.decide({ requestId: 1, cookie: cookieOf(busy.decide({ requestId: 1 }, who)) }, who)
    assert.equal(ask(joiner).action, 'answer')
    assert.deepEqual(ask({ ...joiner, address: '10.0.0.13' }), { action: 'refuse', reason: 'rate_limited' })
    busy.release()
    assert.equal(ask({ ...joiner, address: '10.0.0.13' }).action, 'answer')
  })
})

describe('snapshot gate and IPv6 link-local addresses', () => {
  it('a cookie holds for the same link-local address whatever interface name the socket attached to it', () => {
    const gate = new SnapshotGate({ now: () => T })
    const on = (scope: string): SnapshotRequester => ({ ...joiner, address: `fe80::a075:15ff:fe01:4a86%${scope}` })
    const cookie = cookieOf(gate.decide({ requestId: 5 }, on('mc6b')))
    assert.deepEqual(gate.decide({ requestId: 5, cookie }, on('mc6a')), { action: 'answer' })
    assert.deepEqual(gate.decide({ requestId: 5, cookie }, { ...joiner, address: 'fe80::a075:15ff:fe01:4a87%mc6a' }), { action: 'refuse', reason: 'bad_cookie' })
  })
})
