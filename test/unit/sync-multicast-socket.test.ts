import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import os from 'node:os'
import { test } from 'node:test'
import { Registry } from 'prom-client'
import { PrimarySessionCache } from '../../src/cache/primary-session-cache.js'
import type { HostPort } from '../../src/config/host-port.js'
import { V2Codec } from '../../src/sync/codecs.js'
import { farmKeyId } from '../../src/sync/farm-secret.js'
import { SyncService } from '../../src/sync/sync-service.js'
import { createLogger } from '../../src/util/logger.js'
import { freePort } from '../helpers/ports.js'

/**
 * SyncService in this process on real multicast sockets (loopback, 127.0.0.1): what a node
 * pays for its own multicast echo, and which groups' datagrams reach it.
 */
const clock = { sessionTimeoutSeconds: 300, maxSkewSeconds: 5 }

function farmKeys (): Array<{ id: number; secret: Buffer }> {
  const secret = crypto.randomBytes(48)
  return [{ id: farmKeyId(secret), secret }]
}

async function startSync (group: HostPort, keys = farmKeys(), name = 'node'): Promise<{ sync: SyncService; registry: Registry; cache: PrimarySessionCache }> {
  const cache = new PrimarySessionCache({ maxEntries: 1000, maxBytes: 1 << 20, lifetimeSeconds: 300 })
  const registry = new Registry()
  const sync = new SyncService({
    listen: group,
    peers: { list: () => [], close: () => {} },
    multicastInterface: '127.0.0.1',
    codec: new V2Codec(keys, `${name}-${crypto.randomUUID()}`, clock),
    recvBufferBytes: 1 << 20
  }, cache, createLogger({ level: 'silent', format: 'json' }), registry)
  await sync.start()
  return { sync, registry, cache }
}

async function packetsIn (registry: Registry, result: string): Promise<number> {
  const metric = await registry.getSingleMetric('tlsfleet_sync_packets_total')?.get()
  return metric?.values.find((v) => v.labels.direction === 'in' && v.labels.result === result)?.value ?? 0
}

async function until (check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

function newSession (): { id: Buffer; entry: { der: Buffer; createdAt: number } } {
  return { id: crypto.randomBytes(32), entry: { der: crypto.randomBytes(150), createdAt: Math.floor(Date.now() / 1000) } }
}

test('multicast: our own echo costs no look-up of the machine\'s interfaces per packet', async (t) => {
  const group = { host: '239.255.77.1', port: await freePort() }
  const { sync, registry } = await startSync(group)
  t.after(async () => { await sync.close() })
  let lookups = 0
  const real = os.networkInterfaces
  os.networkInterfaces = () => { lookups++; return real() }
  t.after(() => { os.networkInterfaces = real })
  const updates = 200
  for (let i = 0; i < updates; i++) {
    const { id, entry } = newSession()
    sync.publishNew(id, entry)
    // One per turn: each leaves as its own datagram and comes back as our echo.
    await new Promise((resolve) => setImmediate(resolve))
  }
  await until(async () => await packetsIn(registry, 'own') >= updates, `${updates} own echoes`)
  // Each was a getifaddrs() call (tens of µs, more on a host with many interfaces) before.
  assert.ok(lookups <= 2, `os.networkInterfaces() called ${lookups} times for ${updates} own echoes`)
})

test('multicast: our echo is known as coming from our own socket, so it is refused as own without an AEAD open; a neighbour on the same host and port is not', async (t) => {
  const group = { host: '239.255.77.2', port: await freePort() }
  const keys = farmKeys()
  const { sync, registry } = await startSync(group, keys, 'us')
  t.after(async () => { await sync.close() })
  // What the service tells the codec about each datagram's source (decode's second argument).
  const seen: Array<{ sender: string, fromOwnSocket: boolean | undefined }> = []
  const codec = (sync as unknown as { codec: V2Codec }).codec
  const decode = codec.decode.bind(codec)
  codec.decode = (datagram, fromOwnSocket) => {
    seen.push({ sender: datagram.subarray(5, 13).toString('hex'), fromOwnSocket })
    return decode(datagram, fromOwnSocket)
  }
  for (let i = 0; i < 20; i++) {
    const { id, entry } = newSession()
    sync.publishNew(id, entry)
    await new Promise((resolve) => setImmediate(resolve))
  }
  await until(async () => await packetsIn(registry, 'own') >= 20, '20 own echoes')
  const ours = codec.nodeId.toString('hex')
  assert.deepEqual([...new Set(seen.filter((s) => s.sender === ours).map((s) => s.fromOwnSocket))], [true])
  // Another node of this host, on the group's port too: from our socket's address and port as
  // far as the kernel says (the flag is true), yet its packets are opened and accepted.
  const neighbour = await startSync(group, keys, 'neighbour')
  t.after(async () => { await neighbour.sync.close() })
  const { id, entry } = newSession()
  neighbour.sync.publishNew(id, entry)
  await until(async () => await packetsIn(registry, 'accepted') >= 1, 'the neighbour\'s update accepted')
})

test('multicast: a node hears its own group only, not another farm\'s group on the same host and port', async (t) => {
  const port = await freePort()
  const ours = await startSync({ host: '239.255.77.2', port }, farmKeys(), 'ours')
  const theirs = await startSync({ host: '239.255.77.3', port }, farmKeys(), 'theirs')
  t.after(async () => { await ours.sync.close(); await theirs.sync.close() })
  const before = await packetsIn(ours.registry, 'own')
  for (let i = 0; i < 5; i++) {
    const { id, entry } = newSession()
    theirs.sync.publishNew(id, entry)
    await new Promise((resolve) => setImmediate(resolve))
  }
  // The other farm's node hears its own packets come back: they were on the wire.
  await until(async () => await packetsIn(theirs.registry, 'own') >= 5, 'the other group\'s echoes')
  // And a packet of our own group still reaches us (so the silence below is not a dead socket).
  const { id, entry } = newSession()
  ours.sync.publishNew(id, entry)
  await until(async () => await packetsIn(ours.registry, 'own') > before, 'our own echo')
  const refused = Object.fromEntries(await Promise.all(['unknown_key', 'bad_tag'].map(async (r) => [r, await packetsIn(ours.registry, r)])))
  assert.deepEqual(refused, { unknown_key: 0, bad_tag: 0 }, 'the other group\'s datagrams were delivered to us and refused')
  assert.equal(ours.sync.peerList().length, 0, 'no row for the other farm\'s node')
})
