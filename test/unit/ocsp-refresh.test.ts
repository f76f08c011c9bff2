import assert from 'node:assert/strict'
import { test } from 'node:test'
import { refreshDelay, retryDelay, STAGGER, staggered } from '../../src/ocsp/ocsp-stapler.js'

const HOUR = 3600_000

test('a response is fetched again when half of its validity has passed, or after the refresh interval', () => {
  const now = 1_000_000_000
  assert.equal(refreshDelay(undefined, now, HOUR), 0)
  // 60 s of validity: fetched again 30 s after thisUpdate.
  assert.equal(refreshDelay({ thisUpdate: now, nextUpdate: now + 60_000 }, now, HOUR), 30_000)
  // A week of validity: the interval comes first.
  assert.equal(refreshDelay({ thisUpdate: now, nextUpdate: now + 168 * HOUR }, now, HOUR), HOUR)
  assert.equal(refreshDelay({ thisUpdate: now, nextUpdate: undefined }, now, HOUR), HOUR)
  // Loaded from disk already past its half life: at once.
  assert.equal(refreshDelay({ thisUpdate: now - 50_000, nextUpdate: now + 10_000 }, now, HOUR), 0)
})

test('failed fetches are retried sooner than a refresh, backing off up to the interval', () => {
  assert.deepEqual([1, 2, 3, 4].map((n) => retryDelay(n, HOUR)), [10_000, 20_000, 40_000, 80_000])
  assert.equal(retryDelay(30, HOUR), HOUR)
  assert.equal(retryDelay(3, 15_000), 15_000)
})

test('planned fetches are spread: each wait cut by up to a tenth at random, never lengthened; at once stays at once', () => {
  assert.equal(STAGGER, 0.1)
  assert.equal(staggered(HOUR, () => 0), HOUR)
  assert.equal(staggered(HOUR, () => 0.5), HOUR * 0.95)
  assert.equal(staggered(0, () => 0.7), 0)
  // Many certificates due at the same moment: spread over the last tenth, none after it.
  const waits = Array.from({ length: 1000 }, () => staggered(HOUR))
  assert.ok(waits.every((w) => w > HOUR * (1 - STAGGER) - 1 && w <= HOUR), 'within the tenth')
  assert.ok(new Set(waits).size > 900, 'not the same moment')
})
