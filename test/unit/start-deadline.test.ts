import assert from 'node:assert/strict'
import { test } from 'node:test'
import { START_DEADLINE_WITHOUT_HANG_WATCH_MS, workerStartDeadlineMs } from '../../src/node/start-deadline.js'

test('a worker\'s start deadline is --worker-hang-timeout plus 5 s, and a minute when hung workers are never killed', () => {
  assert.equal(workerStartDeadlineMs(10_000), 15_000, 'the default')
  assert.equal(workerStartDeadlineMs(3000), 8000)
  assert.equal(workerStartDeadlineMs(0), START_DEADLINE_WITHOUT_HANG_WATCH_MS)
  assert.equal(workerStartDeadlineMs(undefined), 60_000)
})
