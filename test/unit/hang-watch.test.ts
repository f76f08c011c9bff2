import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HangWatch } from '../../src/node/hang-watch.js'

/** One report round a second, each ending 800 ms after it was asked without worker 7's answer. */
function silentRounds (watch: HangWatch, from: number, count: number, worker = 7): Array<{ at: number; hung: number[] }> {
  const out: Array<{ at: number; hung: number[] }> = []
  for (let i = 0; i < count; i++) {
    const asked = from + i * 1000
    out.push({ at: asked + 800, hung: watch.roundEnded([worker], asked, asked + 800).map((h) => h.worker) })
  }
  return out
}

test('a worker silent for the timeout, over three rounds or more, is hung once; the time counts from the first unanswered request', () => {
  const watch = new HangWatch(5000)
  const rounds = silentRounds(watch, 0, 8)
  // Asked at 0 .. 7000; silent 5000 ms by the end of the round asked at 5000 (ends 5800, since 0).
  assert.deepEqual(rounds.map((r) => r.hung.length), [0, 0, 0, 0, 0, 1, 0, 0])
  const watch2 = new HangWatch(5000)
  const [hung] = silentRounds(watch2, 0, 6).flatMap((r, i) => r.hung.length > 0 ? [i] : [])
  assert.equal(hung, 5)
  assert.deepEqual(new HangWatch(5000).roundEnded([1], 0, 800), [])
})

test('any answer, even one too late for its round, resets the count', () => {
  const watch = new HangWatch(3000)
  silentRounds(watch, 0, 3)
  watch.answered(7, 2900)
  assert.deepEqual(silentRounds(watch, 3000, 3).map((r) => r.hung.length), [0, 0, 0], 'counted afresh from 3000: silent 2800 ms after three rounds')
  assert.deepEqual(silentRounds(watch, 6000, 1)[0]?.hung, [7])
})

test('a long timeout needs the time, a short one needs three rounds', () => {
  const long = new HangWatch(10_000)
  assert.equal(silentRounds(long, 0, 10).filter((r) => r.hung.length > 0).length, 0)
  assert.deepEqual(silentRounds(long, 10_000, 1)[0]?.hung, [7])
  const short = new HangWatch(100)
  assert.deepEqual(silentRounds(short, 0, 3).map((r) => r.hung.length), [0, 0, 1])
})

test('a round whose worker answered late, before the round was judged, does not count', () => {
  const watch = new HangWatch(1000)
  silentRounds(watch, 0, 2)
  // The third round ended at 2800 unanswered; the answer was read at 2850, the round judged at 2851.
  watch.answered(7, 2850)
  assert.deepEqual(watch.roundEnded([7], 2000, 2851), [])
  assert.deepEqual(silentRounds(watch, 3000, 2).map((r) => r.hung.length), [0, 0], 'counted afresh')
})

test('rounds in flight while the primary itself was paused count as one: the next round answered, nothing is hung', () => {
  const watch = new HangWatch(2000)
  // Three rounds asked at 0, 100 and 200 (the sampler and two scrapes); the primary is stopped
  // from 300 to 30,000: on resume all three end unanswered at once (timers before the answers),
  // and the answers read before they are judged are not there yet (the worst case).
  assert.deepEqual(watch.roundEnded([7], 0, 30_000), [])
  assert.deepEqual(watch.roundEnded([7], 100, 30_000), [])
  assert.deepEqual(watch.roundEnded([7], 200, 30_001), [])
  // Then the answers are read.
  watch.answered(7, 30_002)
  assert.deepEqual(silentRounds(watch, 31_000, 2).map((r) => r.hung.length), [0, 0])
  // Had the worker really been silent, the rounds asked after the pause count on.
  const stuck = new HangWatch(2000)
  stuck.roundEnded([7], 0, 30_000)
  stuck.roundEnded([7], 100, 30_000)
  assert.deepEqual(stuck.roundEnded([7], 30_500, 31_300).map((h) => h.worker), [], 'two rounds so far')
  const third = stuck.roundEnded([7], 31_500, 32_300)
  assert.deepEqual(third, [{ worker: 7, silentMs: 32_300 }])
})

test('a hung worker is reported once; after its exit its id starts afresh; workers are counted apart', () => {
  const watch = new HangWatch(1000)
  silentRounds(watch, 0, 3, 1)
  assert.deepEqual(silentRounds(watch, 3000, 3, 1).map((r) => r.hung), [[], [], []], 'already reported')
  watch.exited(1)
  assert.deepEqual(silentRounds(watch, 6000, 3, 1).map((r) => r.hung), [[], [], [1]])
  assert.deepEqual(watch.roundEnded([2, 3], 10_000, 10_800), [])
  watch.answered(2, 10_900)
  watch.roundEnded([2, 3], 11_000, 11_800)
  assert.deepEqual(watch.roundEnded([2, 3], 12_000, 12_800).map((h) => h.worker), [3])
})

test('a timeout of 0 or less is refused (the pool makes no watch then)', () => {
  assert.throws(() => new HangWatch(0), /hang timeout must be > 0 ms/)
  assert.throws(() => new HangWatch(Number.NaN), /hang timeout/)
})
