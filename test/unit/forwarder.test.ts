import assert from 'node:assert/strict'
import net from 'node:net'
import { once } from 'node:events'
import { test } from 'node:test'
import { backendTarget, forwardToBackend, type BackendTarget } from '../../src/proxy/forwarder.js'

/** A connected pair of loopback sockets: `inner` is what a worker would forward, `outer` its client. */
async function socketPair (): Promise<{ inner: net.Socket; outer: net.Socket; close: () => void }> {
  const server = net.createServer({ allowHalfOpen: true })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepted = once(server, 'connection') as Promise<[net.Socket]>
  const outer = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  outer.on('error', () => {})
  const [inner] = await accepted
  return { inner, outer, close: () => server.close() }
}

function target (port: number, errors: string[]): BackendTarget {
  return backendTarget({ backend: { host: '127.0.0.1', port }, proxyProtocolOut: 'off', connectTimeoutMs: 5000, idleTimeoutMs: 60_000, onBackendError: (reason) => errors.push(reason) })
}

/** Both sockets closed, the forward leaves the sweeps (bounded wait: the two closes come on separate ticks). */
async function settled (t: BackendTarget): Promise<void> {
  for (let i = 0; i < 200 && t.connecting.size + t.idle.size > 0; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  assert.equal(t.connecting.size + t.idle.size, 0, 'the forward left the sweeps')
}

function closeSweeps (t: BackendTarget): void {
  t.connecting.close()
  t.idle.close()
}

test('forwarder: a refused backend is counted once as connect_failed and the client is closed', async () => {
  const free = net.createServer().listen(0, '127.0.0.1')
  await once(free, 'listening')
  const port = (free.address() as net.AddressInfo).port
  await new Promise((resolve) => free.close(resolve))
  const errors: string[] = []
  const t = target(port, errors)
  const { inner, outer, close } = await socketPair()
  try {
    forwardToBackend(inner, t)
    await once(inner, 'close')
    await settled(t)
    assert.deepEqual(errors, ['connect_failed'])
  } finally {
    outer.destroy(); close(); closeSweeps(t)
  }
})

test('forwarder: a backend that resets after connecting is counted once as reset and the client is closed', async () => {
  const backend = net.createServer((socket) => { socket.on('error', () => {}); socket.once('data', () => socket.resetAndDestroy()) })
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  const errors: string[] = []
  const t = target((backend.address() as net.AddressInfo).port, errors)
  const { inner, outer, close } = await socketPair()
  try {
    forwardToBackend(inner, t)
    outer.write('hello')
    await once(inner, 'close')
    await settled(t)
    assert.deepEqual(errors, ['reset'])
  } finally {
    outer.destroy(); close(); backend.close(); closeSweeps(t)
  }
})

test('forwarder: a client that fails after the backend connected resets the backend connection too, with no backend error counted', async () => {
  let upstream: net.Socket | undefined
  let backendSaw: string | undefined
  const backend = net.createServer((socket) => { upstream = socket; socket.on('error', (err: NodeJS.ErrnoException) => { backendSaw = err.code }) })
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  const errors: string[] = []
  const t = target((backend.address() as net.AddressInfo).port, errors)
  const { inner, outer, close } = await socketPair()
  inner.on('error', () => {}) // the terminator's own listener in a worker
  try {
    forwardToBackend(inner, t)
    for (let i = 0; i < 200 && t.idle.size === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5))
    assert.equal(t.idle.size, 1, 'joined to the backend')
    inner.destroy(new Error('client failed'))
    assert.ok(upstream !== undefined)
    if (!upstream.closed) await new Promise((resolve) => (upstream as net.Socket).once('close', resolve))
    await settled(t)
    assert.deepEqual(errors, [])
    assert.equal(backendSaw, 'ECONNRESET', 'a reset, not a FIN: the backend must not read a failed client as a clean end')
  } finally {
    outer.destroy(); close(); backend.close(); closeSweeps(t)
  }
})
