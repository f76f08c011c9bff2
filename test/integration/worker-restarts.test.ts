import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { StateBody } from '../../src/admin/schemas.js'
import { agentSays, runCli } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { childPids, eventually, runNodeToExit, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'

/** Makes chosen workers hang before they listen, or crash after (see the helper). */
const FAULTS = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'worker-start-faults.js')).href

async function stateOf (node: RunningNode): Promise<StateBody> {
  return await (await fetch(`${node.adminUrl}/v1/state`)).json() as StateBody
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

/** The pid a worker wrote in the fault helper's directory (by cluster id), once it has. */
async function pidOf (dir: string, id: number): Promise<number> {
  const file = path.join(dir, `${id}.pid`)
  await eventually(() => fs.existsSync(file), 10_000, `worker ${id} forked`)
  return Number(fs.readFileSync(file, 'utf8'))
}

const STUCK = 'worker did not listen within its start deadline (stuck before it serves): killed, to be replaced'

function weightOf (reply: string): number | undefined {
  const match = /^ready up (\d+)%/.exec(reply)
  return match !== null ? Number(match[1]) : undefined
}

test('a node that lost 1 of its 2 workers tells HAProxy half its weight until the replacement listens', async () => {
  const dir = tempDir()
  const backend = await startRecordingBackend()
  const cert = makeCertificate(dir, 'capacity', ['localhost'])
  const [port, admin, agent] = await freePorts(3) as [number, number, number]
  // Every replacement (cluster id 3 on) stays stuck before it listens.
  const node = await startNode(['--workers', '2', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`, '--cert', cert, '--agent-listen', `127.0.0.1:${agent}`, '--grace-period', '1'], {
    adminPort: admin,
    env: { NODE_OPTIONS: `--import ${FAULTS}`, TLSFLEET_TEST_HOLD_WORKERS: '3-' }
  })
  const explained = (err: Error): never => { throw new Error(`${err.message}; ${node.diagnosis()}`) }
  try {
    assert.equal(await agentSays(agent), 'ready up 100%\n')
    const [victim] = childPids(node.process.pid as number)
    assert.ok(victim !== undefined)
    process.kill(victim, 'SIGKILL')
    await node.waitForLog((l) => l.msg === 'worker died; replacing it' && l.worker === victim).catch(explained)

    let reply = ''
    await eventually(async () => { reply = await agentSays(agent); return (weightOf(reply) ?? 100) <= 50 }, 5000, 'the weight halved').catch((err: Error) => explained(new Error(`${err.message}; the agent said ${JSON.stringify(reply)}`)))
    const state = await stateOf(node)
    assert.deepEqual({ configured: state.workers.configured, listening: state.workers.listening }, { configured: 2, listening: 1 })
    assert.equal(state.health, 'up', 'one worker still serves')
    assert.ok(state.weightPercent <= 50, `weightPercent ${state.weightPercent}`)
    assert.match(state.agentReply, /^ready up (50|45|40)%$/)
    assert.equal((await sClient({ port, tls: '1.3' })).protocol, 'TLSv1.3', 'the survivor serves')
  } finally {
    await node.stop()
    await backend.close()
  }
})

test('a replacement stuck before it listens is killed at its start deadline (--worker-hang-timeout + 5 s), counted as hung and replaced', async () => {
  const dir = tempDir()
  const faults = tempDir()
  const backend = await startRecordingBackend()
  const cert = makeCertificate(dir, 'stuck', ['localhost'])
  const [port, admin] = await freePorts(2) as [number, number]
  // The first replacement (cluster id 2) hangs at start; the next one is fine.
  const node = await startNode(['--workers', '1', '--worker-hang-timeout', '2', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`, '--cert', cert, '--grace-period', '1'], {
    adminPort: admin,
    env: { NODE_OPTIONS: `--import ${FAULTS}`, TLSFLEET_TEST_HOLD_WORKERS: '2', TLSFLEET_TEST_FAULT_DIR: faults }
  })
  const explained = (err: Error): never => { throw new Error(`${err.message}; ${node.diagnosis()}`) }
  try {
    const first = await pidOf(faults, 1)
    process.kill(first, 'SIGKILL')
    const stuck = await pidOf(faults, 2)
    const killedAt = Date.now()
    const line = await node.waitForLog((l) => l.msg === STUCK, 15_000).catch(explained)
    assert.equal(line.worker, stuck)
    assert.equal(line.startDeadlineMs, 7000)
    assert.equal(line.level, 50, 'error')
    assert.ok(Date.now() - killedAt >= 6000, 'not before its deadline')
    await eventually(() => !alive(stuck), 5000, 'the stuck worker gone').catch(explained)
    await node.waitForLog((l) => l.msg === 'hung worker gone; replacing it' && l.worker === stuck && l.signal === 'SIGKILL').catch(explained)
    await eventually(async () => await node.metric('tlsfleet_workers', { state: 'listening' }) === 1, 15_000, 'a replacement listening').catch(explained)
    assert.equal(await node.metric('tlsfleet_worker_restarts_total', { reason: 'hung' }), 1)
    assert.equal(await node.metric('tlsfleet_worker_restarts_total', { reason: 'died' }), 1)
    assert.equal((await sClient({ port, tls: '1.3' })).protocol, 'TLSv1.3', 'the next replacement serves')
  } finally {
    await node.stop()
    await backend.close()
  }
})

test('a worker stuck at the node\'s own start fails the start at its deadline with TLSFLEET_ERR_WORKER_START, and is not left behind', async () => {
  const dir = tempDir()
  const faults = tempDir()
  const cert = makeCertificate(dir, 'stuck-start', ['localhost'])
  const [port, admin] = await freePorts(2) as [number, number]
  const startedAt = Date.now()
  const result = await runNodeToExit(['--workers', '2', '--worker-hang-timeout', '1', '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${admin}`, '--cert', cert], {
    env: { NODE_OPTIONS: `--import ${FAULTS}`, TLSFLEET_TEST_HOLD_WORKERS: '2', TLSFLEET_TEST_FAULT_DIR: faults },
    timeoutMs: 30_000
  })
  assert.equal(result.code, 1, `the start was not bounded (or failed otherwise); stderr:\n${result.stderr}`)
  assert.match(result.stderr, /tlsfleet: a worker did not listen within 6 s of its start and was killed: .*raise --worker-hang-timeout.*\(TLSFLEET_ERR_WORKER_START\)/)
  assert.ok(Date.now() - startedAt >= 6000)
  const stuck = Number(fs.readFileSync(path.join(faults, '2.pid'), 'utf8'))
  await eventually(() => !alive(stuck), 5000, 'the stuck worker gone with its node')
  const other = Number(fs.readFileSync(path.join(faults, '1.pid'), 'utf8'))
  await eventually(() => !alive(other), 5000, 'the worker that listened gone with its node')
})

test('workers that crash 1 s after they listen: the restart delays grow to 10 s and stay there (about 35 s); /v1/state, /metrics and tlsfleet status say crash loop', async () => {
  const dir = tempDir()
  const backend = await startRecordingBackend()
  const cert = makeCertificate(dir, 'loop', ['localhost'])
  const [port, admin, agent] = await freePorts(3) as [number, number, number]
  const node = await startNode(['--workers', '2', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`, '--cert', cert, '--agent-listen', `127.0.0.1:${agent}`, '--grace-period', '1'], {
    adminPort: admin,
    env: { NODE_OPTIONS: `--import ${FAULTS}`, TLSFLEET_TEST_CRASH_AFTER_LISTENING_MS: '1000' }
  })
  const explained = (err: Error): never => { throw new Error(`${err.message}; ${node.diagnosis()}`) }
  const delays = (): number[] => node.logs.filter((l) => l.msg === 'worker died; replacing it').map((l) => Number(l.restartInMs))
  try {
    // Polled while the loop runs: what an operator sees, and what HAProxy gets.
    let looping: NonNullable<StateBody['workers']['restarts']> | undefined
    let status = ''
    const replies = new Set<string>()
    // Five deaths at the cap: the delay holds. The 30 s sliding window this replaces fell back
    // after four (10 s, 10 s, 10 s, 10 s, then 4 s, 0.5 s, 1 s ... about 35 s in).
    await eventually(async () => {
      const state = await stateOf(node)
      const restarts = state.workers.restarts
      if (restarts?.crashLoop === true && (restarts.nextRestartInMs ?? 0) > 1000 && looping === undefined) {
        looping = restarts
        status = (await runCli(['status', '--admin', node.adminUrl])).stdout
      }
      replies.add((await agentSays(agent)).replace(/ \d+%/, ' N%').replace(/wait \d+(\.\d)? s/, 'wait S s'))
      const seen = delays()
      return seen.filter((d) => d === 10_000).length >= 5 || seen.some((d, i) => i > 0 && d < (seen[i - 1] as number))
    }, 60_000, 'five restarts at the 10 s cap').catch((err: Error) => explained(new Error(`${err.message}; restart delays ${delays().join(', ')}`)))
    const seen = delays()
    assert.deepEqual(seen.slice(0, 2), [0, 0], 'as many free restarts as workers')
    for (let i = 1; i < seen.length; i++) assert.ok((seen[i] as number) >= (seen[i - 1] as number), `the back-off fell: ${seen.join(', ')}`)
    assert.ok(seen.includes(500) && seen.includes(8000), `doubling from 0.5 s: ${seen.join(', ')}`)

    assert.ok(looping !== undefined, 'never saw the crash loop in /v1/state')
    assert.equal(looping.windowSeconds, 60)
    assert.ok(looping.recent >= 4, `restarts in the window: ${looping.recent}`)
    assert.ok((looping.nextRestartInMs ?? 0) <= 10_000)
    assert.ok(looping.delayMs >= 1000 && looping.delayMs <= 10_000)
    assert.match(status, /warning: CRASH LOOP: \d+ worker restart\(s\) in the last 60 s, next in \d+\.\d s/)
    assert.equal(await node.metric('tlsfleet_worker_crash_loop'), 1)
    assert.equal(node.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('workers keep dying (a crash loop)')).length, 1, 'logged once per loop')
    // Mostly no worker at all, which HAProxy is told is a crash loop; in between, one or two
    // listening, at their share of the weight.
    assert.ok(replies.has('ready down N% #no live worker (crash loop: replacements wait S s)\n'), [...replies].join(''))
  } finally {
    await node.stop()
    await backend.close()
  }
})
