import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { test } from 'node:test'
import { SessionStore, SNAPSHOT_SKIPS_PER_PAUSE, type SessionEntry } from '../../src/cache/session-store.js'

/**
 * SessionStore.snapshot() is walked a few entries per event-loop turn (sendSnapshot) while the
 * store changes between steps. Each test here plays the walk's steps and the changes between
 * them synchronously, in an order chosen to hit each way an LRU walk can go wrong.
 */
const createdAt = (): number => Math.floor(Date.now() / 1000)
const entry = (): SessionEntry => ({ der: crypto.randomBytes(20), createdAt: createdAt() })
const hex = (id: Buffer): string => id.toString('hex')

function storeWith (count: number, maxEntries = count * 4): { store: SessionStore; ids: Buffer[] } {
  const store = new SessionStore({ maxEntries, lifetimeSeconds: 300 })
  const ids = Array.from({ length: count }, () => crypto.randomBytes(32))
  for (const id of ids) store.set(id, entry())
  return { store, ids }
}

type Walk = Generator<[Buffer, SessionEntry] | undefined>

/** Takes `n` entries from the walk (past its pause points); the ids taken, in order. */
function take (walk: Walk, n: number): Buffer[] {
  const out: Buffer[] = []
  while (out.length < n) {
    const next = walk.next()
    if (next.done === true) break
    if (next.value !== undefined) out.push(next.value[0])
  }
  return out
}

function rest (walk: Walk): Buffer[] { return take(walk, Number.MAX_SAFE_INTEGER) }

test('snapshot: the session the walk stands on read (moved to the newest end) between two steps: the rest still comes, each once', () => {
  const { store, ids } = storeWith(10)
  const walk = store.snapshot()
  const first = take(walk, 3)
  store.get(first[2] as Buffer)
  const all = [...first, ...rest(walk)].map(hex)
  assert.deepEqual(all.slice().sort(), ids.map(hex).sort())
})

test('snapshot: the session the walk stands on deleted, or evicted, between two steps: the rest still comes', () => {
  for (const how of ['delete', 'evict'] as const) {
    const { store, ids } = storeWith(10, 10)
    const walk = store.snapshot()
    const first = take(walk, 1)
    const gone = first[0] as Buffer
    // Full: one new session evicts the least recently used, the one the walk stands on.
    if (how === 'delete') store.delete(gone)
    else store.set(crypto.randomBytes(32), entry())
    assert.equal(store.has(gone), false, `${how}: the walk (oldest first) stands on the session that went`)
    const heldThroughout = ids.filter((id) => store.has(id))
    const all = [...first, ...rest(walk)].map(hex)
    assert.equal(heldThroughout.length, 9)
    for (const id of heldThroughout) assert.ok(all.includes(hex(id)), `${how}: a session held throughout is missing`)
    assert.equal(new Set(all).size, all.length, `${how}: a session came twice`)
  }
})

test('snapshot: sessions already sent and then read or updated (moved ahead of the walk) are not sent twice', () => {
  const { store, ids } = storeWith(10)
  const walk = store.snapshot()
  const first = take(walk, 5)
  store.get(first[0] as Buffer)
  store.set(first[1] as Buffer, entry())
  const all = [...first, ...rest(walk)].map(hex)
  assert.equal(all.length, ids.length)
  assert.deepEqual(all.slice().sort(), ids.map(hex).sort())
})

test('snapshot: nothing is collected up front: a session added after the first step is in it, one deleted before the walk reaches it is not', () => {
  const { store, ids } = storeWith(10)
  const walk = store.snapshot()
  const first = take(walk, 1)
  const added = crypto.randomBytes(32)
  store.set(added, entry())
  const deleted = ids[9] as Buffer
  store.delete(deleted)
  const all = [...first, ...rest(walk)].map(hex)
  assert.ok(all.includes(hex(added)), 'a session added while the walk was under way')
  assert.ok(!all.includes(hex(deleted)))
})

test('snapshot: a cleared store ends the walk', () => {
  const { store } = storeWith(10)
  const walk = store.snapshot()
  take(walk, 2)
  store.clear()
  assert.deepEqual(rest(walk), [])
})

test('snapshot under random reads, updates, inserts, deletes and evictions between steps: every session held throughout comes exactly once, no deleted one after its deletion', () => {
  for (let round = 0; round < 20; round++) {
    const { store, ids } = storeWith(500, 700)
    const held = new Set(ids.map(hex))
    const deleted = new Set<string>()
    const known = [...ids]
    const walk = store.snapshot()
    const got: string[] = []
    for (;;) {
      const step = take(walk, 1 + crypto.randomInt(8))
      for (const id of step) {
        assert.ok(!deleted.has(hex(id)), 'a deleted session was sent')
        got.push(hex(id))
      }
      if (step.length === 0) break
      // Between two steps, often on the session the walk stands on (the last one taken).
      for (let i = 0; i < 6; i++) {
        const last = step[step.length - 1] as Buffer
        const target = crypto.randomInt(3) === 0 ? last : known[crypto.randomInt(known.length)] as Buffer
        switch (crypto.randomInt(4)) {
          case 0: store.get(target); break
          case 1:
            store.set(target, entry())
            deleted.delete(hex(target)) // back again: it may be sent
            break
          case 2: {
            const id = crypto.randomBytes(32)
            store.set(id, entry()) // evicts once full
            known.push(id)
            break
          }
          case 3:
            store.delete(target)
            held.delete(hex(target))
            deleted.add(hex(target))
            break
        }
      }
      // An eviction takes a session out of "held throughout" too.
      for (const key of held) if (!store.has(Buffer.from(key, 'hex'))) held.delete(key)
    }
    assert.equal(new Set(got).size, got.length, `round ${round}: a session came twice`)
    for (const key of held) assert.ok(got.includes(key), `round ${round}: a session held throughout is missing`)
  }
})

test('snapshot: a long run of entries passed over (expired, or sent and moved ahead) yields pause points, so the caller\'s turn stays short', () => {
  let now = 1_000_000_000_000
  const store = new SessionStore({ maxEntries: 10_000, lifetimeSeconds: 60, now: () => now })
  const old = Math.floor(now / 1000)
  for (let i = 0; i < 2.5 * SNAPSHOT_SKIPS_PER_PAUSE; i++) store.set(crypto.randomBytes(32), { der: Buffer.from('x'), createdAt: old })
  now += 30_000
  const live = crypto.randomBytes(32)
  store.set(live, { der: Buffer.from('y'), createdAt: Math.floor(now / 1000) })
  now += 40_000 // the first 2500 have expired, the last is live
  const steps = [...store.snapshot()]
  assert.deepEqual(steps.map((s) => s === undefined ? 'pause' : hex(s[0])), ['pause', 'pause', hex(live)])
})
