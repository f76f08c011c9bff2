import assert from 'node:assert/strict'
import { test } from 'node:test'
import { freeTcpPort } from '../../src/util/free-port.js'

test('free ports handed out against one "taken" set are distinct and recorded', async () => {
  const taken = new Set<number>()
  const ports: number[] = []
  for (let i = 0; i < 30; i++) ports.push(await freeTcpPort('127.0.0.1', taken))
  assert.equal(new Set(ports).size, 30)
  assert.deepEqual([...taken].sort(), [...ports].sort())
})
