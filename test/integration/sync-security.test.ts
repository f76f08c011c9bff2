import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import dgram from 'node:dgram'
import fs from 'node:fs'
import { after, before, test } from 'node:test'
import { FarmKeyRing } from '../../src/sync/farm-keys.js'
import { farmKeyId } from '../../src/sync/farm-secret.js'
import { createSequenceCounter, encodeV2, frameBatchV2, type SyncMessage } from '../../src/sync/wire-v2.js'
import { eventually } from '../helpers/node-process.js'
import { startFarm } from '../helpers/farm.js'

// One node listening for sync; the test plays a (hostile or honest) peer with a real UDP socket.
let farm: Awaited<ReturnType<typeof startFarm>>
let secret: Buffer
const sender = dgram.createSocket('udp4')

before(async () => {
  farm = await startFarm(['127.0.0.1'], { sync: (_i, ports) => ['--sync-listen', `127.0.0.1:${ports[0] as number}`] })
  secret = fs.readFileSync(farm.secret).subarray(0, -1) // the node drops the trailing newline too
  await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', resolve))
})

after(async () => {
  sender.close()
  await farm?.stop()
})

const node = (): typeof farm.nodes[0] => farm.nodes[0] as typeof farm.nodes[0]
const peerId = crypto.randomBytes(8)
const sequence = createSequenceCounter()

function seal (message: SyncMessage, key: Buffer = secret, id = farmKeyId(secret)): Buffer {
  return encodeV2(message, { keyRing: new FarmKeyRing([{ id, secret: key }]), nodeId: peerId, nextSequence: sequence })
}

async function send (packet: Buffer): Promise<void> {
  await new Promise<void>((resolve, reject) => sender.send(packet, node().sync, '127.0.0.1', (err) => err === null ? resolve() : reject(err)))
}

async function rejected (reason: string): Promise<number> {
  return await node().node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: reason })
}

function newSession (createdAt = Math.floor(Date.now() / 1000)): SyncMessage {
  return { op: 'new', sessionId: crypto.randomBytes(32), session: crypto.randomBytes(120), createdAt }
}

test('an honest packet is accepted and cached; the same packet again is a replay', async () => {
  const entries = await node().node.metric('tlsfleet_session_cache_entries')
  const packet = seal(newSession())
  await send(packet)
  await eventually(async () => await node().node.metric('tlsfleet_session_cache_entries') === entries + 1, 5000, 'the session in L2')
  await send(packet)
  await eventually(async () => await rejected('replay') === 1, 5000, 'replay counted')
  assert.equal(await node().node.metric('tlsfleet_session_cache_entries'), entries + 1)
})

test('forged, wrong-secret, truncated, oversized, future and stale packets are dropped, counted, never cached', async () => {
  const entries = await node().node.metric('tlsfleet_session_cache_entries')
  const good = seal(newSession())
  const forged = Buffer.from(good)
  forged[forged.length - 40] = (forged[forged.length - 40] as number) ^ 0x01 // flip a ciphertext bit
  const cases: Array<[string, Buffer]> = [
    ['bad_tag', forged],
    // Right key id, wrong secret: the tag cannot verify.
    ['bad_tag', seal(newSession(), crypto.randomBytes(48), farmKeyId(secret))],
    ['unknown_key', seal(newSession(), crypto.randomBytes(48), (farmKeyId(secret) + 1) % 256)],
    ['truncated', good.subarray(0, good.length - 5)],
    ['oversized', Buffer.concat([good, crypto.randomBytes(1500)])],
    ['future', seal(newSession(Math.floor(Date.now() / 1000) + 3600))],
    ['stale', seal(newSession(Math.floor(Date.now() / 1000) - 3600))],
    ['bad_magic', crypto.randomBytes(200)]
  ]
  const before = new Map<string, number>()
  for (const [reason] of cases) before.set(reason, await rejected(reason))
  for (const [, packet] of cases) await send(packet)
  const expected = new Map<string, number>()
  for (const [reason] of cases) expected.set(reason, (expected.get(reason) ?? 0) + 1)
  for (const [reason, count] of expected) {
    await eventually(async () => await rejected(reason) === (before.get(reason) ?? 0) + count, 5000, `${reason} counted`)
  }
  assert.equal(await node().node.metric('tlsfleet_session_cache_entries'), entries, 'a rejected packet reached the cache')
  // The node still serves and still accepts honest packets afterwards.
  await send(seal(newSession()))
  await eventually(async () => await node().node.metric('tlsfleet_session_cache_entries') === entries + 1, 5000, 'honest packet after the attack')
  const peers = await (await fetch(`${node().node.adminUrl}/health`)).status
  assert.equal(peers, 200)
})

test('a Del for a session removes it; a forged Del does not', async () => {
  const entries = async (): Promise<number> => await node().node.metric('tlsfleet_session_cache_entries')
  const withSession = await entries() + 1
  const message = newSession()
  await send(seal(message))
  await eventually(async () => await entries() === withSession, 5000, 'the session in L2')
  const del = seal({ op: 'del', sessionId: (message as { sessionId: Buffer }).sessionId })
  const forgedDel = Buffer.from(del)
  forgedDel[50] = (forgedDel[50] as number) ^ 0xff
  await send(forgedDel)
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.equal(await entries(), withSession)
  await send(del)
  await eventually(async () => await entries() === withSession - 1, 5000, 'session deleted')
})

test('a batch datagram with one forged update: the others are cached, only that one is refused and counted', async () => {
  const entries = await node().node.metric('tlsfleet_session_cache_entries')
  const accepted = await rejected('accepted')
  const badTags = await rejected('bad_tag')
  const messages = [newSession(), newSession(), newSession()]
  const packets = messages.map((m) => seal(m))
  const forged = Buffer.from(packets[1] as Buffer)
  forged[forged.length - 30] = (forged[forged.length - 30] as number) ^ 0x01 // a ciphertext bit of the second update
  await send(frameBatchV2([packets[0] as Buffer, forged, packets[2] as Buffer]))
  await eventually(async () => await node().node.metric('tlsfleet_session_cache_entries') === entries + 2, 5000, 'the two honest sessions in L2')
  assert.equal(await rejected('bad_tag'), badTags + 1)
  assert.equal(await rejected('accepted'), accepted + 2)
  assert.ok(await node().node.metric('tlsfleet_sync_datagrams_total', { direction: 'in' }) >= 1)
  // The forged update did not reach the cache: its honest original is still new to the node.
  await send(packets[1] as Buffer)
  await eventually(async () => await node().node.metric('tlsfleet_session_cache_entries') === entries + 3, 5000, 'the original of the forged update')
})
