import assert from 'node:assert/strict'
import { test } from 'node:test'
import { formatAgentReply, sanitizeReason } from '../../src/agent/agent-reply.js'

test('formats admin state, health and weight percent on one line', () => {
  assert.equal(formatAgentReply({ admin: 'ready', health: 'up', weightPercent: 80 }), 'ready up 80%\n')
  assert.equal(formatAgentReply({ admin: 'drain', health: 'up', weightPercent: 100 }), 'drain up 100%\n')
  assert.equal(formatAgentReply({ admin: 'maint', health: 'up', weightPercent: 100 }), 'maint up 100%\n')
})

test('always carries a health word and never weight:N', () => {
  for (const admin of ['ready', 'drain', 'maint'] as const) {
    for (const health of ['up', 'down'] as const) {
      const line = formatAgentReply({ admin, health, weightPercent: 50 })
      assert.match(line, new RegExp(`^${admin} ${health} 50%\\n$`))
      assert.doesNotMatch(line, /weight:/)
    }
  }
})

test('adds maxconn when given (0 = unlimited)', () => {
  assert.equal(formatAgentReply({ admin: 'ready', health: 'up', weightPercent: 80, maxconn: 500 }), 'ready up 80% maxconn:500\n')
  assert.equal(formatAgentReply({ admin: 'ready', health: 'up', weightPercent: 80, maxconn: 0 }), 'ready up 80% maxconn:0\n')
  assert.throws(() => formatAgentReply({ admin: 'ready', health: 'up', weightPercent: 80, maxconn: -1 }), /maxconn/)
  assert.throws(() => formatAgentReply({ admin: 'ready', health: 'up', weightPercent: 80, maxconn: 1.5 }), /maxconn/)
})

test('weight is an integer clamped to 0..100', () => {
  assert.equal(formatAgentReply({ admin: 'ready', health: 'up', weightPercent: 150 }), 'ready up 100%\n')
  assert.equal(formatAgentReply({ admin: 'ready', health: 'up', weightPercent: -3 }), 'ready up 0%\n')
  assert.equal(formatAgentReply({ admin: 'ready', health: 'up', weightPercent: 79.6 }), 'ready up 80%\n')
  assert.equal(formatAgentReply({ admin: 'ready', health: 'up', weightPercent: Infinity }), 'ready up 100%\n')
  assert.throws(() => formatAgentReply({ admin: 'ready', health: 'up', weightPercent: Number.NaN }), /weight percent/)
})

test('down with a reason: the reason goes last, after #, on the same line', () => {
  assert.equal(formatAgentReply({ admin: 'ready', health: 'down', weightPercent: 100, reason: 'no workers' }), 'ready down 100% #no workers\n')
  const line = formatAgentReply({ admin: 'ready', health: 'down', weightPercent: 100, reason: 'a\r\nmaint up 100%\nb\u0000c' })
  assert.equal(line, 'ready down 100% #a maint up 100% b c\n')
  assert.equal(line.indexOf('\n'), line.length - 1, 'exactly one line terminator, at the end')
  assert.doesNotMatch(line, /\r/)
})

test('an empty or blank reason is left out', () => {
  assert.equal(formatAgentReply({ admin: 'ready', health: 'down', weightPercent: 100, reason: ' \n ' }), 'ready down 100%\n')
})

test('long reasons are cut at a word boundary with an ellipsis, commas are kept (HAProxy reads the reason to the end of line)', () => {
  assert.equal(sanitizeReason('x'.repeat(500)), 'x'.repeat(197) + '...')
  assert.equal(sanitizeReason('no workers, restarting'), 'no workers, restarting')
  assert.equal(sanitizeReason('y'.repeat(200)), 'y'.repeat(200), 'a reason of exactly the limit is whole')
  // Before: cut at 200 characters, mid-word, with a trailing space ('... level ').
  const long = '--terminator-socket /run/haproxy/node.sock answers at level "operator": tlsfleet needs level admin to read and set ticket keys; declare it "stats socket /run/haproxy/node.sock ... level admin" in the local HAProxy\'s global section'
  const cut = sanitizeReason(long)
  assert.ok(cut.length <= 200, `${cut.length} characters`)
  assert.match(cut, /[^\s,;:]\.\.\.$/)
  assert.ok(long.startsWith(cut.slice(0, -3) + ' '), 'cut at a word boundary')
})

test('invalid states are rejected with a clear error', () => {
  // @ts-expect-error: testing a value the type forbids (input from JS callers)
  assert.throws(() => formatAgentReply({ admin: 'up', health: 'up', weightPercent: 1 }), /admin state "up"/)
  // @ts-expect-error: testing a value the type forbids (input from JS callers)
  assert.throws(() => formatAgentReply({ admin: 'ready', health: 'fail', weightPercent: 1 }), /health "fail"/)
})
