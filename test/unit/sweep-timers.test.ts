import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DeadlineSweep, IdleSweep, sweepPeriodMs, type Activity, type HasDeadline } from '../../src/util/sweep-timers.js'

test('a sweep runs every tenth of its timeout, between the floor and one second', () => {
  assert.equal(sweepPeriodMs(10_000, 10), 1000)
  assert.equal(sweepPeriodMs(300_000, 100), 1000)
  assert.equal(sweepPeriodMs(500, 10), 50)
  assert.equal(sweepPeriodMs(100, 10), 10)
  assert.equal(sweepPeriodMs(1000, 100), 100)
})

test('DeadlineSweep expires an item once its deadline has passed, not before, and never a deleted one', () => {
  const expired: string[] = []
  const sweep = new DeadlineSweep<HasDeadline & { name: string }>(1000, (item) => expired.push(item.name))
  try {
    const a = { name: 'a', deadline: 0, sweepSlot: -1 }
    const b = { name: 'b', deadline: 0, sweepSlot: -1 }
    const c = { name: 'c', deadline: 0, sweepSlot: -1 }
    sweep.add(a, 500, 1000)
    sweep.add(b, 2000, 1000)
    sweep.add(c, 500, 1000)
    sweep.delete(c)
    sweep.sweep(1499)
    assert.deepEqual(expired, [])
    sweep.sweep(1500)
    assert.deepEqual(expired, ['a'])
    assert.equal(sweep.size, 1)
    sweep.sweep(5000)
    assert.deepEqual(expired, ['a', 'b'], 'each item expires once; the deleted one never')
    assert.equal(sweep.size, 0)
  } finally {
    sweep.close()
  }
})

test('IdleSweep expires an item only after idleMs with its count unchanged; any change starts the wait again', () => {
  const expired: string[] = []
  const counts = new Map<string, number>([['quiet', 10], ['busy', 10]])
  type Item = Activity & { name: string }
  const sweep = new IdleSweep<Item>(100, 1000, (item) => counts.get(item.name) as number, (item) => expired.push(item.name))
  try {
    const quiet: Item = { name: 'quiet', activityCount: 0, activeAt: 0, sweepSlot: -1 }
    const busy: Item = { name: 'busy', activityCount: 0, activeAt: 0, sweepSlot: -1 }
    sweep.add(quiet, 0)
    sweep.add(busy, 0)
    for (let now = 100; now < 1000; now += 100) {
      counts.set('busy', (counts.get('busy') as number) + 1)
      sweep.sweep(now)
    }
    assert.deepEqual(expired, [])
    sweep.sweep(1000)
    assert.deepEqual(expired, ['quiet'], 'quiet for 1000 ms: expired')
    // busy last moved at 900: still there at 1899, gone at 1900.
    sweep.sweep(1899)
    assert.deepEqual(expired, ['quiet'])
    sweep.sweep(1900)
    assert.deepEqual(expired, ['quiet', 'busy'])
    assert.equal(sweep.size, 0)
  } finally {
    sweep.close()
  }
})

test('DeadlineSweep expires every due item of one sweep, whatever their order, and an item moves between sweeps', () => {
  const expired: string[] = []
  const first = new DeadlineSweep<HasDeadline & { name: string }>(1000, (item) => expired.push(item.name))
  const second = new DeadlineSweep<HasDeadline & { name: string }>(1000, (item) => expired.push(`second:${item.name}`))
  try {
    const items = ['a', 'b', 'c', 'd', 'e'].map((name) => ({ name, deadline: 0, sweepSlot: -1 }))
    // Due: a, c, e (deadline 1500); not yet: b, d (deadline 3000).
    items.forEach((item, i) => first.add(item, i % 2 === 0 ? 500 : 2000, 1000))
    first.sweep(1500)
    assert.deepEqual([...expired].sort(), ['a', 'c', 'e'])
    assert.equal(first.size, 2)
    const b = items[1] as HasDeadline & { name: string }
    assert.equal(first.delete(b), true)
    assert.equal(first.delete(b), false, 'deleted once')
    assert.equal(second.delete(b), false, 'never in the other sweep')
    second.add(b, 100, 2000)
    assert.equal(first.delete(b), false, 'in the second sweep now, not the first')
    assert.throws(() => first.add(b, 100, 2000), /already in a list/)
    first.sweep(5000)
    second.sweep(5000)
    assert.deepEqual([...expired].sort(), ['a', 'c', 'd', 'e', 'second:b'])
    assert.equal(first.size + second.size, 0)
  } finally {
    first.close()
    second.close()
  }
})
