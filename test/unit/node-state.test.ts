import assert from 'node:assert/strict'
import { test } from 'node:test'
import { formatAgentReply } from '../../src/agent/agent-reply.js'
import { LoadSampler, makeSample, type SampledWorker } from '../../src/agent/load-sampler.js'
import { judgeHealth, NodeState } from '../../src/agent/node-state.js'

const healthy = { terminator: { serving: true }, warm: true, stopping: false }
const noWorker = { serving: false, reason: 'no live worker' }

test('health: the first blocking reason wins, in the order an operator fixes them', () => {
  assert.deepEqual(judgeHealth(healthy), { health: 'up' })
  assert.deepEqual(judgeHealth({ ...healthy, backendReachable: true }), { health: 'up' })
  assert.equal(judgeHealth({ ...healthy, terminator: noWorker }).reason, 'no live worker')
  assert.equal(judgeHealth({ ...healthy, backendReachable: false }).reason, 'backend unreachable')
  assert.match(judgeHealth({ ...healthy, warm: false, terminator: noWorker }).reason ?? '', /warming up/)
  assert.equal(judgeHealth({ ...healthy, stopping: true, terminator: noWorker }).reason, 'stopping')
})

test('a new node is down until warm and listening, then reports its admin state and weight', () => {
  const state = new NodeState({ maxconn: 500 })
  assert.equal(formatAgentReply(state.agentReply()), 'ready down 100% maxconn:500 #warming up (waiting for a session snapshot from peers)\n')
  state.updateHealth(healthy)
  assert.equal(formatAgentReply(state.agentReply()), 'ready up 100% maxconn:500\n')
  assert.equal(state.snapshot().effective, 'ready')
})

test('admin state changes emit once, and invalid states are refused without a change', () => {
  const state = new NodeState({ initial: 'drain' })
  state.updateHealth(healthy)
  const changes: string[] = []
  state.on('change', (now, before) => changes.push(`${before}->${now}`))
  assert.equal(state.setAdmin('drain'), false)
  assert.equal(state.setAdmin('maint'), true)
  assert.equal(state.setAdmin('ready'), true)
  assert.throws(() => state.setAdmin('bogus' as never), /invalid state "bogus"/)
  assert.equal(state.admin, 'ready')
  assert.deepEqual(changes, ['drain->maint', 'maint->ready'])
  assert.equal(formatAgentReply(state.agentReply()), 'ready up 100%\n')
  assert.ok(state.snapshot().changedAt !== undefined)
})

test('down overrides the admin state in the effective state, and the agent says why', () => {
  const state = new NodeState({ initial: 'maint' })
  state.updateHealth({ ...healthy, terminator: noWorker })
  const snap = state.snapshot()
  assert.equal(snap.effective, 'down')
  assert.equal(snap.admin, 'maint')
  assert.equal(formatAgentReply(state.agentReply()), 'maint down 100% #no live worker\n')
})

test('a terminator\'s long reason stays whole in the state; the agent says its short one', () => {
  const state = new NodeState()
  const reason = '--terminator-socket /run/haproxy/node.sock answers at level "operator": tlsfleet needs level admin to read and set ticket keys; declare it "stats socket /run/haproxy/node.sock ... level admin" in the local HAProxy\'s global section'
  state.updateHealth({ ...healthy, terminator: { serving: false, reason, agentReason: 'local haproxy socket is at level operator, needs admin' } })
  assert.equal(state.snapshot().reason, reason)
  assert.equal(formatAgentReply(state.agentReply()), 'ready down 100% #local haproxy socket is at level operator, needs admin\n')
})

test('a stopping node tells HAProxy drain and down', () => {
  const state = new NodeState()
  state.updateHealth({ ...healthy, stopping: true })
  assert.equal(formatAgentReply(state.agentReply()), 'drain down 100% #stopping\n')
})

test('lost workers lower the weight the agent sends: 1 of 2 listening, idle, is 50 %', () => {
  const state = new NodeState()
  state.updateHealth({ ...healthy, terminator: { serving: true, servingShare: 1 } })
  for (let i = 0; i < 5; i++) state.updateLoad({ eventLoopUtilization: 0.01, handshakesPerSecond: 0 })
  assert.equal(formatAgentReply(state.agentReply()), 'ready up 100%\n')
  state.updateHealth({ terminator: { serving: true, servingShare: 1 / 2 } })
  assert.equal(formatAgentReply(state.agentReply()), 'ready up 50%\n')
  assert.equal(state.snapshot().weightPercent, 50)
  state.updateHealth({ terminator: { serving: true, servingShare: 1 / 8 } })
  assert.equal(state.snapshot().weightPercent, 15)
  state.updateHealth({ terminator: { serving: true, servingShare: 1 } })
  assert.equal(state.snapshot().weightPercent, 100, 'the replacement listens: all of it back')
})

test('load lowers the weight, smoothly, and an idle node gets it all back', () => {
  const state = new NodeState({ maxHandshakesPerSecond: 1000 })
  state.updateHealth(healthy)
  const weights: number[] = []
  for (let i = 0; i < 10; i++) { state.updateLoad({ eventLoopUtilization: 0.1, handshakesPerSecond: 900 }); weights.push(state.snapshot().weightPercent) }
  assert.ok(weights.every((w, i) => i === 0 || w <= (weights[i - 1] as number)), `weights rose under steady load: ${weights.join(',')}`)
  assert.ok((weights.at(-1) as number) <= 20, `weight under 90% handshake load: ${weights.join(',')}`)
  for (let i = 0; i < 30; i++) state.updateLoad({ eventLoopUtilization: 0.01, handshakesPerSecond: 0 })
  assert.equal(state.snapshot().weightPercent, 100)
})

function worker (pid: number, elu: number, full: number, resumed: number): SampledWorker {
  return {
    pid,
    handshakes: { full, resumed },
    l1: { entries: 1, hits: 0, misses: 0, bytes: 10 },
    eventLoopUtilization: elu,
    activeConnections: 2
  }
}

test('samples: handshake rate from counter deltas, silent workers count as saturated, first reports skipped', () => {
  const t0 = new Date(0)
  const first = makeSample([worker(1, 0.9, 10, 5), worker(2, 0.2, 0, 0)], 2, undefined, t0, new Set([1]))
  assert.deepEqual(first.handshakes, { full: 10, resumed: 5 })
  assert.equal(first.handshakesPerSecond, 0)
  assert.equal(first.eventLoopUtilization, 0.2)
  assert.equal(first.connections, 4)
  const second = makeSample([worker(1, 0.5, 30, 15)], 2, first, new Date(2000))
  assert.equal(second.handshakesPerSecond, 15)
  assert.equal(second.eventLoopUtilization, 0.75) // (0.5 + 1 for the silent worker) / 2
  // A worker died: the sums drop; that is no negative rate.
  const third = makeSample([], 1, second, new Date(3000))
  assert.equal(third.handshakesPerSecond, 0)
  assert.equal(third.eventLoopUtilization, 1)
  assert.equal(makeSample([worker(3, 0.4, 0, 0)], 1, undefined, t0, new Set([3])).eventLoopUtilization, undefined)
})

test('samples: light reports carry handshake counters without the metrics JSON', () => {
  const light = (pid: number, full: number, resumed: number): SampledWorker => ({ ...worker(pid, 0.1, 0, 0), handshakes: { full, resumed } })
  const a = makeSample([light(1, 4, 6), light(2, 1, 1)], 2, undefined, new Date(0))
  assert.deepEqual(a.handshakes, { full: 5, resumed: 7 })
  assert.equal(makeSample([light(1, 14, 16), light(2, 1, 1)], 2, a, new Date(1000)).handshakesPerSecond, 20)
})

test('the sampler keeps what a worker that exited had counted: totals never drop', async () => {
  const worker = (pid: number, full: number, hits: number): SampledWorker => ({ pid, l1: { entries: 0, hits, misses: 1, bytes: 0 }, eventLoopUtilization: 0.1, activeConnections: 0, handshakes: { full, resumed: 0 } })
  let round: () => SampledWorker[] = () => [worker(1, 10, 4), worker(2, 5, 2)]
  const sampler = new LoadSampler({ intervalMs: 1000, listening: () => 2, collect: async () => round(), onSample: () => {} })
  assert.equal((await sampler.sampleOnce()).handshakes.full, 15)
  sampler.workerExited(1)
  round = () => [worker(2, 6, 3)]
  const afterExit = await sampler.sampleOnce()
  assert.equal(afterExit.handshakes.full, 16, 'worker 1\'s 10 stay counted')
  assert.deepEqual(afterExit.retired, { full: 10, resumed: 0, hits: 4, misses: 1 })
  // Worker 2 exits; its replacement, worker 3, answers the next round.
  sampler.workerExited(2)
  round = () => [worker(3, 1, 0)]
  assert.equal((await sampler.sampleOnce()).handshakes.full, 10 + 6 + 1)
})
