import assert from 'node:assert/strict'
import { test } from 'node:test'
import { refreshDelay, retryDelay } from '../../src/ocsp/ocsp-stapler.js'

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
