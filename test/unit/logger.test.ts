import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SyncStateError } from '../../src/errors.js'
import { serializeError } from '../../src/util/logger.js'

test('a logged error whose message already says its cause is not followed by the cause again; other causes still are', () => {
  const errno = Object.assign(new Error('EACCES: permission denied, open \'/var/lib/tlsfleet/sync.json\''), { code: 'EACCES' })
  // Our errors quote their cause: pino appended it a second time.
  const ours = serializeError(new SyncStateError('/var/lib/tlsfleet/sync.json', errno)) as { message: string; stack: string; code: string }
  assert.equal(ours.message.split('EACCES').length - 1, 1, ours.message)
  assert.match(ours.stack, /caused by: Error: EACCES/, 'the cause stays in the stack')
  assert.equal(ours.code, 'TLSFLEET_ERR_SYNC_STATE')
  const plain = serializeError(new Error('reading the key failed', { cause: errno })) as { message: string }
  assert.equal(plain.message, 'reading the key failed: EACCES: permission denied, open \'/var/lib/tlsfleet/sync.json\'')
  assert.equal(serializeError('not an error'), 'not an error')
})
