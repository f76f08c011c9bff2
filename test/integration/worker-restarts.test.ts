import assert from 'node:assert/strict'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { StateBody } from '../../src/admin/schemas.js'
import { agentSays } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { childPids, eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'

/** Makes chosen workers hang before they listen, or crash after (see the helper). */
const FAULTS = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'worker-start-faults.js')).href

async function stateOf (node: RunningNode): Promise<StateBody> {
  return await (await fetch(`${node.adminUrl}/v1/state`)).json() as StateBody
}

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
