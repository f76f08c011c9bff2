import assert from 'node:assert/strict'
import test from 'node:test'
import { MAX_JOIN_ECHOES, WarmJoin } from '../../src/sync/warm-join.js'

test('an empty peer that answers first does not end the join while a full one is still sending', () => {
  const join = new WarmJoin(7, 2)
  assert.equal(join.challenged('empty:1'), true)
  assert.equal(join.challenged('full:1'), true)
  assert.equal(join.chunk('empty:1', 0, true), 'wait')
  assert.equal(join.chunk('full:1', 100, false), 'wait')
  assert.equal(join.chunk('full:1', 40, true), 'finish', 'both unicast peers are done')
  assert.equal(join.sessions, 140)
  assert.equal(join.responders, 2)
})

test('a unicast peer that never answers, or multicast: done responders settle before the join ends', () => {
  const oneDown = new WarmJoin(1, 2)
  oneDown.challenged('a:1')
  assert.equal(oneDown.chunk('a:1', 5, true), 'settle')
  // A late responder turning up during the settle time holds the join until its last chunk.
  oneDown.challenged('b:1')
  assert.equal(oneDown.step(), 'wait')
  assert.equal(oneDown.chunk('b:1', 3, true), 'finish')

  const group = new WarmJoin(2, undefined)
  group.challenged('x:1')
  assert.equal(group.chunk('x:1', 1, true), 'settle')
  assert.equal(group.step(), 'settle')
})

test('each responder is echoed once, and at most MAX_JOIN_ECHOES of them', () => {
  const join = new WarmJoin(3, undefined)
  assert.equal(join.challenged('a:1'), true)
  assert.equal(join.challenged('a:1'), false)
  for (let i = 0; i < MAX_JOIN_ECHOES * 2; i++) join.challenged(`p${i}:1`)
  assert.equal(join.responders, MAX_JOIN_ECHOES)
  assert.equal(join.step(), 'wait', 'nobody has finished yet')
})
