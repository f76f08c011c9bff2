import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AGENT_ERROR_LINE, startAgentServer } from '../../src/agent/agent-server.js'
import { agentSays, serverRow } from '../helpers/agent.js'
import { pollUntil, startHaproxy, TCP_DEFAULTS } from '../helpers/haproxy.js'

/**
 * When the agent cannot build its reply it says down without an admin-state word: an agent
 * `ready` cancels a drain or maint set through the Runtime API, so the old fallback
 * (`ready down 100% #agent error`) undid what the operator had set.
 */
test('an agent whose reply fails says "down #agent error": HAProxy takes the server down and keeps the operator\'s drain', async (t) => {
  let failures = 0
  const agent = await startAgentServer({
    listen: { host: '127.0.0.1', port: 0 },
    reply: () => { throw new Error('state unavailable') },
    onError: () => { failures += 1 }
  })
  t.after(async () => await agent.close())
  assert.equal(await agentSays(agent.address.port), AGENT_ERROR_LINE)
  assert.equal(AGENT_ERROR_LINE, 'down #agent error\n')

  const haproxy = await startHaproxy(({ ports }) => `${TCP_DEFAULTS}
frontend fe
  bind 127.0.0.1:${ports[0] as number}
  default_backend be

backend be
  server n1 127.0.0.1:${ports[1] as number} weight 100 agent-check agent-port ${agent.address.port} agent-inter 200 agent-send "hello\\n"
`, { ports: 2, t })
  await haproxy.api.setServerState('be', 'n1', 'drain')
  const checksBefore = failures
  // Several agent checks later: down by the agent's word, and still drained.
  await pollUntil('HAProxy to take n1 down by the agent\'s word, three checks on', async () => {
    const r = await serverRow(haproxy.api, 'be', 'n1')
    return failures >= checksBefore + 3 && /agent error/.test(r.last_agt ?? '') && /^DOWN/.test(r.status) ? r : undefined
  })
  const [state] = await haproxy.api.showServersState('be')
  assert.equal(state?.drain, true, `the operator's drain was cancelled (admin flags ${state?.admin_flags.join(',') ?? '?'})`)
  assert.equal(state?.srv_uweight, 100, 'the weight is left as it was')
})
