import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ReportRound } from '../../src/node/report-round.js'

function round (workers: number[]): { round: ReportRound<string>; ended: () => string[] | undefined; endings: () => number } {
  let result: string[] | undefined
  let endings = 0
  const r = new ReportRound<string>(workers, (reports) => { result = reports; endings++ })
  return { round: r, ended: () => result, endings: () => endings }
}

test('a round ends when every worker asked has answered, with their reports in the order they came', () => {
  const { round: r, ended } = round([1, 2])
  r.answered(2, 'two')
  assert.equal(ended(), undefined)
  r.answered(1, 'one')
  assert.deepEqual(ended(), ['two', 'one'])
})

test('a worker that answers and then dies before the round ends is left out (its counts are retired from its last report)', () => {
  const { round: r, ended } = round([1, 2])
  r.answered(1, 'one')
  r.exited(1)
  assert.equal(ended(), undefined, 'worker 2 is still awaited')
  r.answered(2, 'two')
  assert.deepEqual(ended(), ['two'])
})

test('a worker that dies without answering is not waited for', () => {
  const { round: r, ended } = round([1, 2])
  r.answered(1, 'one')
  r.exited(2)
  assert.deepEqual(ended(), ['one'])
})

test('answers from workers not asked, twice from one, or after the end change nothing; the round ends once', () => {
  const { round: r, ended, endings } = round([1, 2])
  r.answered(3, 'stranger')
  r.answered(1, 'one')
  r.answered(1, 'one again')
  r.end()
  assert.deepEqual(ended(), ['one'], 'ended by the timeout with what came')
  r.answered(2, 'late')
  r.exited(1)
  r.end()
  assert.deepEqual(ended(), ['one'])
  assert.equal(endings(), 1)
})

test('a round ended by its timeout names the workers that neither answered nor exited', () => {
  let unanswered: number[] | undefined
  const r = new ReportRound<string>([1, 2, 3, 4], (_reports, missing) => { unanswered = missing })
  r.answered(1, 'one')
  r.exited(2)
  r.end()
  assert.deepEqual(unanswered, [3, 4])
  let none: number[] | undefined
  const full = new ReportRound<string>([1], (_reports, missing) => { none = missing })
  full.answered(1, 'one')
  assert.deepEqual(none, [])
})
