import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import net from 'node:net'
import { after, before, test } from 'node:test'
import type { StateBody } from '../../src/admin/schemas.js'
import { agentSays } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

/** Whatever arrives on the agent port, the node keeps answering HAProxy and changes nothing. */

let node: RunningNode
let agentPort: number
const READY = /^ready up \d+%\n$/

before(async () => {
  const dir = tempDir()
  let port: number
  let admin: number
  ;[port, admin, agentPort] = await freePorts(3) as [number, number, number]
  node = await startNode([
    '--workers', '1', '--listen', `127.0.0.1:${port}`, '--cert', makeCertificate(dir, 'n', ['localhost']),
    '--agent-listen', `127.0.0.1:${agentPort}`
  ], { adminPort: admin })
})

after(async () => { await node?.stop() })

const problems = async (reason: string): Promise<number> => await node.metric('tlsfleet_agent_input_errors_total', { reason })
const adminState = async (): Promise<string> => ((await (await fetch(`${node.adminUrl}/v1/state`)).json()) as StateBody).state

test('what HAProxy sends first (agent-send) is ignored; the reply is one complete line', async () => {
  assert.match(await agentSays(agentPort, 'hello\n'), READY)
  assert.match(await agentSays(agentPort), READY, 'no agent-send at all')
  assert.match(await agentSays(agentPort, 'hello\r\nmore\r\n'), READY)
})

test('commands on the agent port change nothing: it is not a control channel', async () => {
  for (const text of ['drain\n', 'maint\n', 'set server be/n1 state maint\n', 'ready down 0%\n']) {
    assert.match(await agentSays(agentPort, text), READY)
  }
  assert.equal(await adminState(), 'ready')
})

test('garbage bytes: answered, counted, nothing changes', async () => {
  const before = await problems('binary')
  assert.match(await agentSays(agentPort, crypto.randomBytes(600)), READY)
  await eventually(async () => await problems('binary') === before + 1, 3000, 'binary input counted')
  assert.equal(await adminState(), 'ready')
})

test('an endless line is cut after a bounded read; the agent keeps answering', async () => {
  const before = await problems('oversized')
  const socket = net.connect({ host: '127.0.0.1', port: agentPort })
  socket.on('error', () => {})
  socket.on('data', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.on('connect', () => {
    const chunk = Buffer.alloc(16 * 1024, 'a')
    // Keep writing until the agent hangs up (bounded: at most 4 MiB).
    let sent = 0
    const pump = (): void => {
      while (!socket.destroyed && sent < 4 * 1024 * 1024) {
        sent += chunk.length
        if (!socket.write(chunk)) { socket.once('drain', pump); return }
      }
    }
    pump()
  })
  const timer = setTimeout(() => socket.destroy(), 5000)
  await closed
  clearTimeout(timer)
  await eventually(async () => await problems('oversized') === before + 1, 3000, 'oversized input counted')
  assert.match(await agentSays(agentPort, 'hello\n'), READY)
})

test('many idle connections: each is answered, the oldest are evicted, a new check is answered at once', async () => {
  const evictedBefore = await problems('evicted')
  const sockets: net.Socket[] = []
  const replies: string[] = []
  try {
    await Promise.all(Array.from({ length: 200 }, async () => {
      // allowHalfOpen: after the agent's FIN this client keeps its side open, like a peer
      // that connects and then just sits there.
      const socket = net.connect({ host: '127.0.0.1', port: agentPort, allowHalfOpen: true })
      sockets.push(socket)
      socket.on('error', () => {})
      let text = ''
      socket.on('data', (d: Buffer) => { text += d.toString() })
      // Idle: never send, never close. Wait for the reply line (bounded).
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 3000)
        socket.on('data', () => { if (text.includes('\n')) { clearTimeout(t); resolve() } })
        socket.on('close', () => { clearTimeout(t); resolve() })
      })
      replies.push(text)
    }))
    assert.equal(replies.length, 200)
    assert.ok(replies.every((r) => READY.test(r)), `some idle connection got no full line: ${JSON.stringify(replies.find((r) => !READY.test(r)))}`)
    // The agent keeps at most 64 open: the rest were evicted, oldest first.
    assert.ok(await problems('evicted') >= evictedBefore + 100, 'evictions not counted')
    const started = Date.now()
    assert.match(await agentSays(agentPort, 'hello\n'), READY)
    assert.ok(Date.now() - started < 1000, 'a fresh check waited behind idle connections')
  } finally {
    for (const s of sockets) s.destroy()
  }
  assert.equal(await adminState(), 'ready')
})

test('a peer that never closes is cut after the linger timeout', async () => {
  const before = await problems('timeout')
  // allowHalfOpen: the client never closes its side, even after the agent's reply and FIN.
  const socket = net.connect({ host: '127.0.0.1', port: agentPort, allowHalfOpen: true })
  socket.on('error', () => {})
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString() })
  try {
    await eventually(() => READY.test(text), 3000, 'reply on the idle connection')
    await eventually(async () => await problems('timeout') === before + 1, 5000, 'idle connection cut and counted')
  } finally {
    socket.destroy()
  }
  assert.match(await agentSays(agentPort), READY)
})
