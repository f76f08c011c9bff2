import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DEFAULT_BACKOFF, RestartBackoff, restartDelayMs, type BackoffPolicy } from '../../src/node/restart-backoff.js'

const policy: BackoffPolicy = { ...DEFAULT_BACKOFF, freeRestarts: 2 }

test('the first deaths are replaced at once, then the delay doubles from 0.5 s up to 10 s', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 20].map((level) => restartDelayMs(level, policy)), [0, 0, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000])
  assert.equal(restartDelayMs(1, { ...policy, freeRestarts: 0 }), 500)
})

/**
 * A worker that crashes 1 s after each start: the deaths come a delay plus a second apart. The
 * sliding 30 s window this replaces gave 500, 1000, ..., 10000, then 0 again once the long
 * delays had thinned the deaths in the window out; the level here only falls after a quiet minute.
 */
test('a crash loop keeps its delay: the longer waits never make it collapse', () => {
  const backoff = new RestartBackoff({ ...policy, freeRestarts: 1 })
  let now = 0
  const delays: number[] = []
  for (let i = 0; i < 30; i++) {
    const delay = backoff.died(now)
    delays.push(delay)
    now += delay + 1000
  }
  assert.deepEqual(delays.slice(0, 8), [0, 500, 1000, 2000, 4000, 8000, 10_000, 10_000])
  for (let i = 1; i < delays.length; i++) assert.ok((delays[i] as number) >= (delays[i - 1] as number), `the delay fell: ${delays.join(', ')}`)
  assert.equal(delays.at(-1), 10_000)
  assert.equal(backoff.inCrashLoop(now), true)
})

test('the level falls back only after a minute without a death', () => {
  const backoff = new RestartBackoff(policy)
  for (let t = 0; t < 5; t++) backoff.died(t * 1000)
  assert.equal(backoff.died(4000 + 59_999), 4000, '59.999 s quiet: still backing off, one level up')
  assert.equal(backoff.inCrashLoop(4000 + 59_999 + 30_000), true)
  assert.equal(backoff.inCrashLoop(4000 + 59_999 + 60_000), false, 'a quiet minute ends the loop')
  assert.equal(backoff.died(4000 + 59_999 + 60_000), 0, 'and the next death is replaced at once')
})

test('the status counts the deaths of the last minute and says when the next replacement comes', () => {
  const backoff = new RestartBackoff(policy)
  assert.deepEqual(backoff.status(0), { recent: 0, windowSeconds: 60, crashLoop: false, delayMs: 0 })
  backoff.died(1000)
  backoff.died(2000)
  assert.deepEqual(backoff.status(2000), { recent: 2, windowSeconds: 60, crashLoop: false, delayMs: 0 }, 'the free restarts are no loop')
  const delay = backoff.died(3000)
  assert.equal(delay, 500)
  assert.deepEqual(backoff.status(3100, 3000 + delay), { recent: 3, windowSeconds: 60, crashLoop: true, delayMs: 500, nextRestartInMs: 400 })
  assert.equal(backoff.status(61_500).recent, 2, 'the first death is over a minute old')
  assert.throws(() => new RestartBackoff({ ...policy, capMs: Number.NaN }), /capMs/)
})
