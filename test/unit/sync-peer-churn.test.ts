import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import dgram from 'node:dgram'
import { test } from 'node:test'
import { Registry } from 'prom-client'
import { PrimarySessionCache } from '../../src/cache/primary-session-cache.js'
import type { HostPort } from '../../src/config/host-port.js'
import { V2Codec } from '../../src/sync/codecs.js'
import { farmKeyId } from '../../src/sync/farm-secret.js'
import { SyncService } from '../../src/sync/sync-service.js'
import { createLogger } from '../../src/util/logger.js'
import { freePort } from '../helpers/ports.js'

const secret = crypto.randomBytes(48)
const farmKeys = [{ id: farmKeyId(secret), secret }]
const clock = { sessionTimeoutSeconds: 300, maxSkewSeconds: 5 }

function newUpdate (codec: V2Codec): Buffer {
  return codec.encode({ op: 'new', sessionId: crypto.randomBytes(32), session: crypto.randomBytes(100), createdAt: Math.floor(Date.now() / 1000) })
}

async function bound (): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  return socket
}

async function send (socket: dgram.Socket, datagram: Buffer, to: HostPort): Promise<void> {
  await new Promise<void>((resolve, reject) => socket.send(datagram, to.port, to.host, (err) => err === null ? resolve() : reject(err)))
}

test('a long-lived node among peers that come and go (new addresses, new node ids) still tracks the peers it has now', async (t) => {
  const listen = { host: '127.0.0.1', port: await freePort() }
  const current: HostPort[] = []
  const cache = new PrimarySessionCache({ maxEntries: 10_000, maxBytes: 1 << 26, lifetimeSeconds: 300 })
  const registry = new Registry()
  const sync = new SyncService({ listen, peers: { list: () => current, close: () => {} }, multicastInterface: '', codec: new V2Codec(farmKeys, 'long-lived', clock), recvBufferBytes: 8 << 20 }, cache, createLogger({ level: 'silent', format: 'json' }), registry)
  await sync.start()
  t.after(async () => { await sync.close() })

  // The peer of today's socket is bound first: an old peer's closed socket's port, handed out
  // again by the kernel, would already have a row at its address (~4% of runs: 1100 ports of ~28k).
  const socket = await bound()
  t.after(() => socket.close())
  // 1100 peers over the node's life, each gone after a while (a pod restarted: new address, new node id).
  const gone = 1100
  for (let i = 0; i < gone; i += 50) {
    const sockets = await Promise.all(Array.from({ length: 50 }, bound))
    await Promise.all(sockets.map(async (s, j) => { await send(s, newUpdate(new V2Codec(farmKeys, `old-peer-${i + j}`, clock)), listen) }))
    await new Promise((resolve) => setTimeout(resolve, 20))
    for (const s of sockets) s.close()
  }
  // A peer of today, found by DNS.
  const address = socket.address()
  current.push({ host: '127.0.0.1', port: address.port })
  const today = new V2Codec(farmKeys, 'peer-of-today', clock)
  await send(socket, newUpdate(today), listen)
  const key = `127.0.0.1:${address.port}`
  const deadline = Date.now() + 5000
  while (sync.peerList().find((r) => r.address === key) === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  const row = sync.peerList().find((r) => r.address === key)
  assert.ok(row !== undefined, 'the peer of today has its own row in /v1/peers (it was counted under "other")')
  assert.equal(row.nodeId, today.nodeId.toString('hex'))
  assert.equal(row.packetsIn, 1)
  assert.equal(row.configured, true)
  assert.ok(sync.peerList().length <= 1025, 'the rows stay bounded')
})

test('a peer\'s packet replayed from another peer\'s address is a replay: it does not make the two addresses one node (and cut one of them off our updates)', async (t) => {
  const listen = { host: '127.0.0.1', port: await freePort() }
  const x = await bound()
  const y = await bound()
  const received = new Map<dgram.Socket, number>([[x, 0], [y, 0]])
  for (const s of [x, y]) s.on('message', () => received.set(s, (received.get(s) ?? 0) + 1))
  t.after(() => { x.close(); y.close() })
  const targets = [x, y].map((s) => ({ host: '127.0.0.1', port: s.address().port }))
  const cache = new PrimarySessionCache({ maxEntries: 1000, maxBytes: 1 << 24, lifetimeSeconds: 300 })
  const registry = new Registry()
  const sync = new SyncService({ listen, peers: { list: () => targets, close: () => {} }, multicastInterface: '', codec: new V2Codec(farmKeys, 'us', clock), recvBufferBytes: 1 << 20 }, cache, createLogger({ level: 'silent', format: 'json' }), registry)
  await sync.start()
  t.after(async () => { await sync.close() })
  const fromX = newUpdate(new V2Codec(farmKeys, 'x', clock))
  await send(x, fromX, listen)
  await send(y, newUpdate(new V2Codec(farmKeys, 'y', clock)), listen)
  await new Promise((resolve) => setTimeout(resolve, 50))
  // Someone who saw x's packet sends it again with y's address as its source.
  await send(y, fromX, listen)
  await new Promise((resolve) => setTimeout(resolve, 50))
  for (let i = 0; i < 10; i++) {
    sync.publishNew(crypto.randomBytes(32), { der: crypto.randomBytes(100), createdAt: Math.floor(Date.now() / 1000) })
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual([received.get(x), received.get(y)], [10, 10], 'each peer got every update')
  const rows = sync.peerList()
  assert.equal(rows.length, 2, 'two nodes, two rows')
  assert.deepEqual(rows.find((r) => r.address === `127.0.0.1:${y.address().port}`)?.rejected, { replay: 1 })
})
