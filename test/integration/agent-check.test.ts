import assert from 'node:assert/strict'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import type { StateBody } from '../../src/admin/schemas.js'
import { agentExchange, agentSays, holdPort, runCli, serverRow } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { pollUntil, startHaproxy, TCP_DEFAULTS, type RunningHaproxy } from '../helpers/haproxy.js'
import { persistenceLines } from '../../src/lab/haproxy-config.js'
import { childPids, startNode, type RunningNode } from '../helpers/node-process.js'

// The session-ID persistence rules of the shipped haproxy/haproxy.cfg, so the tests check those.
const STICKINESS = persistenceLines().join('\n  ')

/**
 * One real node behind a real HAProxy with agent-check: what the node's agent says is what
 * HAProxy shows, the CLI's drain/ready/maint take effect at once through the Runtime API,
 * and a node left without workers is taken out by its own agent.
 */

let haproxy: RunningHaproxy
let node: RunningNode
let tlsPort: number
let agentPort: number
let frontPort: number
let adminPort: number

const row = async (): Promise<Awaited<ReturnType<typeof serverRow>>> => await serverRow(haproxy.api, 'be', 'n1')
const state = async (): Promise<StateBody> => await (await fetch(`${node.adminUrl}/v1/state`)).json() as StateBody

before(async () => {
  const dir = tempDir()
  const cert = makeCertificate(dir, 'node', ['localhost'])
  haproxy = await startHaproxy(({ ports }) => {
    ;[tlsPort, agentPort, frontPort, adminPort] = ports as [number, number, number, number]
    return `${TCP_DEFAULTS}
frontend fe
  bind 127.0.0.1:${frontPort}
  default_backend be

backend be
  balance roundrobin
  ${STICKINESS}
  server n1 127.0.0.1:${tlsPort} weight 100 send-proxy-v2 check inter 500 fall 2 rise 1 agent-check agent-port ${agentPort} agent-inter 300 agent-send "hello\\n"

# The same node judged by an HTTP check of its admin API's /health instead of the agent.
backend hc
  option httpchk GET /health
  server n1 127.0.0.1:${adminPort} check inter 300 fall 1 rise 1
`
  }, { ports: 4 })
  node = await startNode([
    '--workers', '1', '--listen', `127.0.0.1:${tlsPort}`, '--proxy-protocol-in', 'v2', '--cert', cert,
    '--agent-listen', `127.0.0.1:${agentPort}`, '--maxconn', '500', '--max-handshake-rate', '20',
    '--haproxy-socket', haproxy.socketPath, '--haproxy-server', 'be/n1', '--node-id', 'agent-node'
  ], { adminPort })
})

after(async () => {
  await node?.stop()
  await haproxy?.stop()
})

test('HAProxy shows the state, weight and maxconn the agent reports', async () => {
  assert.equal(await agentSays(agentPort, 'hello\n'), 'ready up 100% maxconn:500\n')
  // The health check can make the server UP (at its configured weight 100) before the first
  // agent check has run: wait for the agent's own verdict too.
  const up = await pollUntil('server UP with weight 100, as the agent said', async () => {
    const r = await row()
    return r.status === 'UP' && r.weight === 100 && /via agent : up/.test(r.last_agt ?? '') ? r : undefined
  })
  assert.equal(up.fields.slim, '500', 'maxconn:500 from the agent')
})

test('under handshake load the agent lowers the weight and HAProxy follows; it rises again after', async () => {
  let stop = false
  let handshakes = 0
  const loop = async (): Promise<void> => {
    while (!stop) {
      await new Promise<void>((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port: frontPort, rejectUnauthorized: false, servername: 'localhost' })
        const t = setTimeout(() => s.destroy(), 2000)
        s.once('secureConnect', () => { handshakes++; s.destroy() })
        s.once('error', () => {})
        s.once('close', () => { clearTimeout(t); resolve() })
      })
    }
  }
  const loops = Array.from({ length: 4 }, loop)
  let loaded: number
  try {
    // The node counts as full at 20 handshakes/s (--max-handshake-rate), so this load must
    // bring the weight down; then HAProxy must show exactly what the agent says.
    loaded = await pollUntil('HAProxy weight = agent weight < 100', async () => {
      const [s, r] = await Promise.all([state(), row()])
      return s.weightPercent < 100 && r.weight === s.weightPercent ? s.weightPercent : undefined
    }, 15_000)
  } finally {
    stop = true
    await Promise.all(loops)
  }
  assert.ok(handshakes > 20, `only ${handshakes} handshakes`)
  // Smoothed and with hysteresis: it climbs back in steps, and HAProxy follows.
  await pollUntil('weight rising again in HAProxy', async () => {
    const r = await row()
    return (r.weight ?? 0) > loaded ? true : undefined
  }, 12_000)
})

test('tlsfleet drain, ready and maint change HAProxy at once (no agent poll needed)', async () => {
  const drain = await runCli(['drain', '--admin', node.adminUrl])
  assert.equal(drain.code, 0, drain.stderr)
  assert.match(drain.stdout, /ready -> drain/)
  assert.match(drain.stdout, /haproxy: set server be\/n1 state drain: ok/)
  // Read right after the CLI returns: the Runtime API did it, not the next agent check.
  const drained = await row()
  assert.match(drained.status, /^DRAIN/)
  assert.deepEqual((await haproxy.api.showServersState('be'))[0]?.admin_flags, ['FDRAIN'])
  assert.match(await agentSays(agentPort), /^drain up \d+% maxconn:500\n$/)
  // The agent keeps saying drain: HAProxy stays drained over several agent checks.
  await new Promise((resolve) => setTimeout(resolve, 800))
  assert.match((await row()).status, /^DRAIN/)
  const health = await fetch(`${node.adminUrl}/health`)
  assert.equal(health.status, 503)
  assert.equal(((await health.json()) as { reason?: string }).reason, 'state is drain')
  await pollUntil('httpchk on /health sees the drained node as DOWN', async () => /^DOWN/.test((await serverRow(haproxy.api, 'hc', 'n1')).status) ? true : undefined)

  const ready = await runCli(['ready', '--admin', node.adminUrl])
  assert.equal(ready.code, 0, ready.stderr)
  assert.equal((await row()).status, 'UP')
  await pollUntil('httpchk on /health sees the node UP again', async () => /^UP/.test((await serverRow(haproxy.api, 'hc', 'n1')).status) ? true : undefined)

  const maint = await runCli(['maint', '--admin', node.adminUrl])
  assert.equal(maint.code, 0, maint.stdout + maint.stderr)
  assert.match(maint.stdout, /clear table be data.server_id eq 1: ok/)
  assert.equal((await row()).status, 'MAINT')
  assert.match(await agentSays(agentPort), /^maint up \d+% maxconn:500\n$/)

  const back = await runCli(['ready', '--admin', node.adminUrl])
  assert.equal(back.code, 0, back.stderr)
  // Out of maintenance HAProxy may show the check's progress, e.g. "UP 1/2".
  assert.match((await row()).status, /^UP/)

  const status = await runCli(['status', '--admin', node.adminUrl])
  assert.equal(status.code, 0, status.stderr)
  assert.match(status.stdout, /^state\s+ready/m)
  assert.match(status.stdout, /^health\s+up/m)
  assert.match(status.stdout, /^workers\s+1\/1 listening/m)
  assert.match(status.stdout, /^haproxy\s+be\/n1 via .*: UP[^,]*, weight \d+/m)
})

test('a node whose workers are all gone reports down, and HAProxy takes it out and shows the crash loop', async () => {
  // Kill the worker and hold its port, so every replacement fails to listen and exits
  // (a crash loop, as with a port taken by another program): no live worker for a while.
  // The first death alone is no loop (`#no live worker`); the replacement's failure makes one.
  const workers = childPids(node.process.pid as number)
  assert.equal(workers.length, 1)
  for (const pid of workers) process.kill(pid, 'SIGKILL')
  const blocker = await holdPort(tlsPort)
  try {
    let last = ''
    const line = await pollUntil('agent says down', async () => {
      last = await agentSays(agentPort)
      return last.startsWith('ready down') && last.includes('crash loop') ? last : undefined
    }).catch(async (err: Error) => {
      // Seen twice in CI under load, never reproduced: say what a connection to the agent port
      // meets, whether the primary is alive, and what the node logged last.
      throw new Error(`${err.message}; agent said ${JSON.stringify(last)}; a connection to the agent port: ${await connectOutcome(agentPort)}; ${node.diagnosis()}`)
    })
    const looping = /^no live worker \(crash loop: replacements wait \d+(\.\d)? s\)$/
    assert.match(line, /^ready down \d+% maxconn:500 #no live worker \(crash loop: replacements wait \d+(\.\d)? s\)\n$/)
    // The L4 check passes (our blocker accepts): HAProxy marks it down because of the agent.
    // (Its L4 check may also have seen the port closed between the kill and the blocker, and
    // marked it down before the agent's next check: wait for the agent's word too.)
    let seen = ''
    await pollUntil('server DOWN in HAProxy on the agent\'s word', async () => {
      const r = await row()
      seen = `${r.status}, last_agt ${JSON.stringify(r.last_agt)}`
      return /^DOWN/.test(r.status) && /no live worker \(crash loop: replacements wait/.test(r.last_agt ?? '') ? r : undefined
    }).catch((err: Error) => { throw new Error(`${err.message}; HAProxy last said ${seen}`) })
    const health = await fetch(`${node.adminUrl}/health`)
    assert.equal(health.status, 503)
    const { reason, ...rest } = await health.json() as { reason?: string }
    assert.match(reason ?? '', looping)
    assert.deepEqual(rest, { status: 'unavailable', state: 'ready', health: 'down' })
    const s = await state()
    assert.equal(s.effective, 'down')
    assert.equal(s.workers.listening, 0)
  } finally {
    await new Promise<void>((resolve) => blocker.close(() => resolve()))
  }
  // Port free again: the next replacement listens (after the restart back-off) and HAProxy
  // brings the node back on the agent's word.
  await pollUntil('server UP again', async () => (await row()).status === 'UP' ? true : undefined, 25_000)
  assert.match(await agentSays(agentPort), /^ready up \d+% maxconn:500\n$/)
})

/** What one connection to `port` meets within 3 s: its bytes, the error it got, or that it hung (diagnostics only). */
async function connectOutcome (port: number): Promise<string> {
  const seen = await agentExchange(port)
  const outcome = seen.error !== undefined ? `error ${seen.error}` : seen.connected ? 'connected' : 'no connect'
  return `${outcome}, ${seen.closed ? 'closed' : 'no close within 3 s'}; got ${JSON.stringify(seen.text)}`
}
