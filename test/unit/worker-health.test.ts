import assert from 'node:assert/strict'
import { test } from 'node:test'
import { formatAgentReply } from '../../src/agent/agent-reply.js'
import { NodeState } from '../../src/agent/node-state.js'
import { DEFAULT_BACKOFF, RestartBackoff } from '../../src/node/restart-backoff.js'
import { workerPoolHealth } from '../../src/node/worker-health.js'

/** The agent line of a warm node whose pool of `configured` workers has `listening` listening. */
function agentLine (listening: number, configured: number, backoff: RestartBackoff, now: number): string {
  const state = new NodeState()
  state.updateHealth({ warm: true, stopping: false, terminator: workerPoolHealth(listening, configured, backoff.status(now)) })
  return formatAgentReply(state.agentReply())
}

test('no worker listening: the agent says so, and in a crash loop says that with the replacements\' wait', () => {
  const backoff = new RestartBackoff({ ...DEFAULT_BACKOFF, freeRestarts: 2 })
  let now = 1_000_000
  // Both workers killed at once: replaced at once, not yet a loop.
  backoff.died(now)
  backoff.died(now)
  assert.equal(agentLine(0, 2, backoff, now), 'ready down 100% #no live worker\n')
  now += 1000
  backoff.died(now)
  assert.equal(agentLine(0, 2, backoff, now), 'ready down 100% #no live worker (crash loop: replacements wait 0.5 s)\n')
  for (let i = 0; i < 4; i++) backoff.died(now += 1000)
  assert.equal(agentLine(0, 2, backoff, now), 'ready down 100% #no live worker (crash loop: replacements wait 8 s)\n')
  // A worker that listens serves, loop or not, at its share of the weight.
  assert.equal(agentLine(1, 2, backoff, now), 'ready up 50%\n')
  // A quiet minute ends the loop.
  now += DEFAULT_BACKOFF.quietResetMs
  assert.equal(agentLine(0, 2, backoff, now), 'ready down 100% #no live worker\n')
})

test('the reason is the same in /v1/state and /health as on the agent line', () => {
  const backoff = new RestartBackoff({ ...DEFAULT_BACKOFF, freeRestarts: 1 })
  for (let i = 0; i < 10; i++) backoff.died(i * 100)
  assert.deepEqual(workerPoolHealth(0, 1, backoff.status(1000)), { serving: false, reason: 'no live worker (crash loop: replacements wait 10 s)' })
  assert.deepEqual(workerPoolHealth(3, 4, backoff.status(1000)), { serving: true, servingShare: 0.75 })
})

test('the agent\'s reason follows the back-off as it is read: a crash loop that ends while no worker listens (nothing pushed since) no longer says the replacements wait', () => {
  const backoff = new RestartBackoff({ ...DEFAULT_BACKOFF, freeRestarts: 1 })
  let now = 1_000_000
  const state = new NodeState()
  // Given once, as the worker terminator does at its last death: read again at each agent check.
  state.updateHealth({ warm: true, stopping: false, terminator: () => workerPoolHealth(0, 1, backoff.status(now)) })
  for (let i = 0; i < 6; i++) backoff.died(now += 1000)
  assert.equal(formatAgentReply(state.agentReply()), 'ready down 100% #no live worker (crash loop: replacements wait 8 s)\n')
  now += DEFAULT_BACKOFF.quietResetMs - 1
  assert.equal(state.health().reason, 'no live worker (crash loop: replacements wait 8 s)', 'still within the quiet minute')
  now += 1
  assert.equal(formatAgentReply(state.agentReply()), 'ready down 100% #no live worker\n')
  assert.equal(state.snapshot().reason, 'no live worker', '/v1/state and /health too')
  // A new death starts from the bottom of the back-off again (free restarts first).
  backoff.died(now += 1000)
  assert.equal(state.health().reason, 'no live worker')
})
