import assert from 'node:assert/strict'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { counterSeries, countersBackwards } from '../../src/metrics/prometheus-text.js'
import { agentSays } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { childPids, eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

const dir = tempDir()
let node: RunningNode
let port: number
let agentPort: number

before(async () => {
  let admin: number
  ;[port, admin, agentPort] = await freePorts(3) as [number, number, number]
  node = await startNode(['--workers', '2', '--listen', `127.0.0.1:${port}`, '--cert', makeCertificate(dir, 'n', ['localhost']),
    '--agent-listen', `127.0.0.1:${agentPort}`], { adminPort: admin })
})

after(async () => { await node?.stop() })

/** `count` requests through the node (handshake, GET, whole answer), `concurrency` at a time (bounded). */
async function handshakes (count: number, concurrency = 8): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < count) {
      await new Promise<void>((resolve) => {
        const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'localhost' })
        const done = (): void => { clearTimeout(timer); socket.destroy(); resolve() }
        const timer = setTimeout(done, 5000)
        socket.once('secureConnect', () => socket.end('GET / HTTP/1.0\r\n\r\n'))
        socket.on('data', () => {})
        socket.once('end', done)
        socket.once('error', done)
      })
    }
  }))
}

const page = async (): Promise<string> => await (await fetch(`${node.adminUrl}/metrics`)).text()

/** The node's handshakes since start as /v1/state (and the dashboard) give them. */
async function stateHandshakes (): Promise<number> {
  const body = await (await fetch(`${node.adminUrl}/v1/state`)).json() as { handshakes: { full: number; resumed: number } }
  return body.handshakes.full + body.handshakes.resumed
}

test('kill -9 of a worker under load: no counter on /metrics goes backwards, nor the totals of /v1/state', async () => {
  await handshakes(60)
  await new Promise((resolve) => setTimeout(resolve, 1100)) // past the page's cache, and a load sample
  const stateBefore = await stateHandshakes()
  assert.ok(stateBefore >= 60, `handshakes on /v1/state: ${stateBefore}`)
  const before = counterSeries(await page())
  assert.ok((before.get('tlsfleet_handshakes_total{result="full",version="TLSv1.3"}') ?? 0) >= 60, 'handshakes not counted')
  const [victim] = childPids(node.process.pid as number)
  assert.ok(victim !== undefined, 'no worker found')
  const load = handshakes(60) // the kill happens under load
  process.kill(victim, 'SIGKILL')
  await load
  await eventually(async () => (await node.metric('tlsfleet_workers', { state: 'listening' })) === 2, 10_000, 'the worker was replaced')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const afterKill = counterSeries(await page())
  assert.deepEqual(countersBackwards(before, afterKill).map((b) => `${b.series}: ${b.before} -> ${b.after}`), [])
  // A worker killed when idle: its handshakes stay in the node's totals (they used to vanish with it).
  await handshakes(20)
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const beforeIdleKill = await stateHandshakes()
  assert.ok(beforeIdleKill >= stateBefore + 20)
  const [idleVictim] = childPids(node.process.pid as number)
  process.kill(idleVictim as number, 'SIGKILL')
  await eventually(async () => (await node.metric('tlsfleet_workers', { state: 'listening' })) === 2, 10_000, 'the worker was replaced')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  assert.equal(await stateHandshakes(), beforeIdleKill)
})

test('/metrics under a scrape storm: one collection per second, the agent weight does not move', async () => {
  // The weight recovers from the load above first; the storm itself must not move it.
  await eventually(async () => /^ready up 100%\n$/.test(await agentSays(agentPort, 'hello\n')), 30_000, 'the agent weight back at 100%')
  const collected = async (): Promise<number> => await node.metric('tlsfleet_metrics_scrapes_total', { result: 'collected' })
  const before = await collected()
  const started = Date.now()
  let served = 0
  await Promise.all(Array.from({ length: 20 }, async () => {
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${node.adminUrl}/metrics`)
      assert.equal(res.status, 200)
      await res.text()
      served++
    }
  }))
  const seconds = (Date.now() - started) / 1000
  assert.equal(served, 600)
  const collections = (await collected()) - before
  assert.ok(collections <= Math.ceil(seconds) + 2, `${collections} collections for 600 scrapes in ${seconds.toFixed(1)} s`)
  // Before the page was cached, this storm alone pulled the weight to 25%. It is measured on the
  // workers, so other test files sharing the machine's two cores may still move it a step or two.
  const weight = Number(/^ready up (\d+)%\n$/.exec(await agentSays(agentPort, 'hello\n'))?.[1])
  assert.ok(weight >= 60, `agent weight ${weight}% after the storm`)
})
