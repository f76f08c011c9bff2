import assert from 'node:assert/strict'
import type { LookupAddress } from 'node:dns'
import { test } from 'node:test'
import { BackendLookup, backendLookupFor } from '../../src/proxy/backend-lookup.js'

/** A resolver the test answers by hand, and a clock it moves. */
function harness (refreshMs = 10_000): { lookup: BackendLookup; asked: () => number; answer: (list: LookupAddress[] | Error) => void; clock: { now: number }; changes: string[][]; staleErrors: Error[] } {
  const pending: Array<{ resolve: (l: LookupAddress[]) => void; reject: (e: Error) => void }> = []
  let asked = 0
  const clock = { now: 0 }
  const changes: string[][] = []
  const staleErrors: Error[] = []
  const lookup = new BackendLookup('app.internal', {
    refreshMs,
    now: () => clock.now,
    lookupAll: async () => { asked++; return await new Promise((resolve, reject) => pending.push({ resolve, reject })) },
    onChange: (next, previous) => changes.push([...previous, '->', ...next]),
    onStaleError: (err) => staleErrors.push(err)
  })
  const answer = (list: LookupAddress[] | Error): void => {
    const next = pending.shift()
    assert.ok(next !== undefined, 'no lookup pending')
    if (list instanceof Error) next.reject(list)
    else next.resolve(list)
  }
  return { lookup, asked: () => asked, answer, clock, changes, staleErrors }
}

/** One connection's lookup, as net.connect calls it with autoSelectFamily (all: true) or without. */
async function resolve (lookup: BackendLookup, options: { all?: boolean; family?: number } = { all: true }): Promise<unknown> {
  return await new Promise((resolve, reject) => {
    lookup.lookup('app.internal', options as never, ((err: Error | null, address: unknown, family?: number) => {
      if (err !== null) reject(err)
      else resolve(options.all === true ? address : { address, family })
    }) as never)
  })
}

/** A harness whose first lookup was answered with `list`, its clock then moved past the refresh period. */
async function knownThenStale (list: LookupAddress[]): Promise<ReturnType<typeof harness>> {
  const h = harness()
  const first = resolve(h.lookup)
  h.answer(list)
  await first
  h.clock.now = 10_000
  return h
}

/** Lets a refresh answered just now finish (its handlers run after the current turn). */
async function settled (): Promise<void> { await new Promise((resolve) => setImmediate(resolve)) }

const A = [{ address: '10.0.0.1', family: 4 }, { address: 'fd00::1', family: 6 }]
const B = [{ address: '10.0.0.2', family: 4 }]

test('the name is looked up once for every connection of a refresh period; the first connections wait for it together', async () => {
  const h = harness()
  const first = resolve(h.lookup)
  const second = resolve(h.lookup)
  assert.equal(h.asked(), 1)
  h.answer(A)
  assert.deepEqual(await first, A)
  assert.deepEqual(await second, A)
  h.clock.now = 9_999
  for (let i = 0; i < 5; i++) assert.deepEqual(await resolve(h.lookup), A)
  assert.equal(h.asked(), 1)
  // Without autoSelectFamily net.connect wants one address; a family filters.
  assert.deepEqual(await resolve(h.lookup, {}), { address: '10.0.0.1', family: 4 })
  assert.deepEqual(await resolve(h.lookup, { all: true, family: 6 }), [{ address: 'fd00::1', family: 6 }])
})

test('after the period a connection is served the last addresses at once while one lookup refreshes them; a change is told', async () => {
  const h = await knownThenStale(A)
  assert.deepEqual(await resolve(h.lookup), A, 'stale, not waiting')
  assert.deepEqual(await resolve(h.lookup), A)
  assert.equal(h.asked(), 2, 'one refresh for both')
  h.answer(B)
  await settled()
  assert.deepEqual(await resolve(h.lookup), B)
  assert.deepEqual(h.changes, [['10.0.0.1', 'fd00::1', '->', '10.0.0.2']])
})

test('a failed refresh keeps the last addresses (told once per run of failures) and is tried again a second later', async () => {
  const h = await knownThenStale(A)
  await resolve(h.lookup)
  h.answer(Object.assign(new Error('queryA ETIMEOUT app.internal'), { code: 'ETIMEOUT' }))
  await settled()
  assert.deepEqual(await resolve(h.lookup), A)
  assert.equal(h.asked(), 2, 'not again within the second')
  h.clock.now = 11_000
  await resolve(h.lookup)
  h.answer(new Error('again'))
  await settled()
  assert.equal(h.staleErrors.length, 1, 'once per run of failures')
  assert.match(String(h.staleErrors[0]), /ETIMEOUT/)
  h.clock.now = 12_000
  await resolve(h.lookup)
  h.answer(A)
  await settled()
  assert.deepEqual(h.changes, [], 'the same addresses: no change')
})

test('with nothing known, a failed lookup fails the connections waiting for it, and the next one asks again', async () => {
  const h = harness()
  const waiting = resolve(h.lookup)
  h.answer(Object.assign(new Error('getaddrinfo ENOTFOUND app.internal'), { code: 'ENOTFOUND' }))
  await assert.rejects(waiting, /ENOTFOUND/)
  const again = resolve(h.lookup)
  assert.equal(h.asked(), 2)
  h.answer([])
  await assert.rejects(again, /app\.internal: the name did not resolve/)
  assert.deepEqual(h.staleErrors, [])
})

test('nothing to look up for an IP address, or with a refresh of 0 (a lookup per connection, as net.connect does)', () => {
  assert.equal(backendLookupFor('127.0.0.1', { refreshMs: 10_000 }), undefined)
  assert.equal(backendLookupFor('::1', { refreshMs: 10_000 }), undefined)
  assert.equal(backendLookupFor('app.internal', { refreshMs: 0 }), undefined)
  assert.ok(backendLookupFor('app.internal', { refreshMs: 10_000 }) instanceof BackendLookup)
})
