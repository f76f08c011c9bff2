import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import { BackendProbe } from '../../src/agent/backend-probe.js'
import { freePort } from '../helpers/ports.js'

test('the backend probe reports reachable only once a probe succeeded, unreachable after two failures in a row', async () => {
  const port = await freePort()
  const changes: boolean[] = []
  const probe = new BackendProbe({ target: { host: '127.0.0.1', port }, intervalMs: 50, onChange: (reachable) => changes.push(reachable) })
  await probe.start()
  // Nothing listens: one failure proves nothing yet (it was reported as reachable at start).
  assert.deepEqual(changes, [])
  const deadline = Date.now() + 5000
  while (changes.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  assert.deepEqual(changes, [false])
  const server = net.createServer((socket) => socket.destroy())
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  try {
    while (changes.length === 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    assert.deepEqual(changes, [false, true])
  } finally {
    probe.stop()
    server.close()
  }
})
