import assert from 'node:assert/strict'
import test from 'node:test'
import { REFUSAL_WARN_INTERVAL_MS, REFUSAL_WARNS_PER_INTERVAL, refusalWarning, RefusalWarnings, warnsAbout } from '../../src/sync/refusal-warning.js'

const ours = { keyIds: [52], maxSkewSeconds: 10, sessionLifetimeSeconds: 300 }

test('a refused sender is told in operator words: the key ids for unknown_key, the clock offset for future and stale', () => {
  assert.equal(refusalWarning('127.0.0.1:47904', 'unknown_key', { keyId: 206 }, ours),
    'sync packets from 127.0.0.1:47904 are all refused (unknown_key: sealed with key id 206, this node holds 52): is its --sync-secret-file the farm\'s?')
  assert.equal(refusalWarning('127.0.0.1:47904', 'future', { offsetMs: 30_400 }, ours),
    'sync packets from 127.0.0.1:47904 are all refused (future: dated 30 s ahead of this clock (--sync-max-skew 10 s)): check NTP on both nodes')
  assert.match(refusalWarning('[::1]:9', 'stale', { offsetMs: -4_000_000 }, ours), /\(stale: dated 4000 s behind this clock, more than the 300 s session lifetime\): check NTP/)
  assert.match(refusalWarning('[::1]:9', 'bad_tag', {}, ours), /another farm's secret with the same key id/)
  assert.match(refusalWarning('[::1]:9', 'bad_magic', {}, ours), /another --sync-format/)
  assert.match(refusalWarning('[::1]:9', 'bad_body', {}, ours), /\(bad_body\): malformed/)
})

test('our own echo, late warm-join answers, dual-stack copies and the passing before_start are not warned about', () => {
  for (const reason of ['own', 'unsolicited', 'duplicate', 'before_start'] as const) assert.equal(warnsAbout(reason), false, reason)
  for (const reason of ['unknown_key', 'bad_tag', 'future', 'stale', 'replay', 'bad_magic'] as const) assert.equal(warnsAbout(reason), true, reason)
})

test('one line per sender and reason per interval, and a bounded number in all: then one last line, then quiet', () => {
  const warnings = new RefusalWarnings()
  const t0 = 1_000_000
  assert.equal(warnings.due(undefined, t0), 'warn')
  assert.equal(warnings.due(t0, t0 + 1000), 'quiet', 'the same sender and reason within the interval')
  assert.equal(warnings.due(t0, t0 + REFUSAL_WARN_INTERVAL_MS), 'warn', 'the same sender and reason an interval later')
  const flood = new RefusalWarnings()
  const answers = Array.from({ length: REFUSAL_WARNS_PER_INTERVAL + 5 }, () => flood.due(undefined, t0))
  assert.equal(answers.filter((a) => a === 'warn').length, REFUSAL_WARNS_PER_INTERVAL)
  assert.equal(answers.filter((a) => a === 'last').length, 1)
  assert.equal(answers.at(-1), 'quiet')
  assert.equal(flood.due(undefined, t0 + REFUSAL_WARN_INTERVAL_MS), 'warn', 'a new interval')
})
