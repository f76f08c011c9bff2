import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SlotList } from '../../src/util/slot-list.js'

type Item = { name: string; slot: number }
const item = (name: string): Item => ({ name, slot: -1 })
const names = (list: SlotList<'slot', Item>): string[] => list.toArray().map((i) => i.name).sort()

test('SlotList holds each item once; a delete moves the last item into the gap and keeps every index true', () => {
  const list = new SlotList<'slot', Item>('slot')
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(item) as [Item, Item, Item, Item]
  for (const x of [a, b, c, d]) list.add(x)
  assert.equal(list.size, 4)
  assert.equal(list.delete(b), true)
  assert.equal(b.slot, -1)
  assert.equal(list.delete(b), false, 'a second delete finds nothing')
  assert.deepEqual(names(list), ['a', 'c', 'd'])
  for (let i = 0; i < list.size; i++) assert.equal(list.at(i).slot, i, 'each item knows its index')
  assert.throws(() => list.add(a), /already in a list by slot/)
  list.add(b)
  assert.deepEqual(names(list), ['a', 'b', 'c', 'd'])
  for (const x of [d, a, c, b]) assert.equal(list.delete(x), true)
  assert.equal(list.size, 0)
  assert.deepEqual(list.toArray(), [])
})

test('SlotList.delete ignores an item of another list whose index happens to be in range', () => {
  const one = new SlotList<'slot', Item>('slot')
  const other = new SlotList<'slot', Item>('slot')
  const a = item('a')
  const b = item('b')
  one.add(a)
  other.add(b)
  assert.equal(one.delete(b), false)
  assert.equal(one.size, 1)
  assert.equal(other.size, 1)
})
