import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { test } from 'node:test'
import { V2Codec, type DecodedPacket } from '../../src/sync/codecs.js'
import { farmKeyId } from '../../src/sync/farm-secret.js'
import { frameBatchV2, type SyncMessage } from '../../src/sync/wire-v2.js'

const secret = crypto.randomBytes(48)
const farmKeys = [{ id: farmKeyId(secret), secret }]
const clock = { sessionTimeoutSeconds: 300, maxSkewSeconds: 5 }

function newSession (): SyncMessage {
  return { op: 'new', sessionId: crypto.randomBytes(32), session: crypto.randomBytes(120), createdAt: Math.floor(Date.now() / 1000) }
}

/** What a node makes of one datagram: accepted, own, or own from a twin. */
function verdict (codec: V2Codec, datagram: Buffer): string {
  const [result] = codec.decode(datagram) as [DecodedPacket]
  if (result.ok) return 'accepted'
  return result.twin === true ? `${result.reason} (twin)` : result.reason
}

async function tick (): Promise<void> { await new Promise((resolve) => setTimeout(resolve, 3)) }

test('a packet with our node id is our own echo when this process sent it, a twin\'s when its sequence is none of ours', async () => {
  const first = new V2Codec(farmKeys, 'twin', clock)
  const early = first.encode(newSession())
  await tick()
  const second = new V2Codec(farmKeys, 'twin', clock)
  const stranger = new V2Codec(farmKeys, 'other', clock)
  await tick()
  const fromFirst = first.encode(newSession())
  const fromSecond = second.encode(newSession())
  // Each its own echo.
  assert.equal(verdict(first, early), 'own')
  assert.equal(verdict(first, fromFirst), 'own')
  assert.equal(verdict(second, fromSecond), 'own')
  // Each other's: the later one's sequences start above all the earlier one sent; the earlier
  // one's, sent since the later started, lie below all of the later one's.
  assert.equal(verdict(first, fromSecond), 'own (twin)')
  assert.equal(verdict(second, fromFirst), 'own (twin)')
  // Sent before the second started: it cannot tell (a previous run of itself, say).
  assert.equal(verdict(second, early), 'own')
  // Another node's packet is no twin's; a forged one with our id is a forgery.
  assert.equal(verdict(first, stranger.encode(newSession())), 'accepted')
  const forged = Buffer.from(fromSecond)
  forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 1
  assert.equal(verdict(first, forged), 'bad_tag')
})

test('a node that has sent nothing yet takes every packet with its id sent since it started for a twin\'s', async () => {
  const quiet = new V2Codec(farmKeys, 'twin', clock)
  await tick()
  const other = new V2Codec(farmKeys, 'twin', clock)
  assert.equal(verdict(quiet, other.encode(newSession())), 'own (twin)')
})

test('from our own socket, a packet with our node id and one of our sequences is refused as own before the AEAD open; anything else is still opened first', async () => {
  const us = new V2Codec(farmKeys, 'us', clock)
  const echo = us.encode(newSession())
  const broken = Buffer.from(echo)
  broken[broken.length - 1] = (broken[broken.length - 1] as number) ^ 1
  const fromOwnSocket = (codec: V2Codec, datagram: Buffer): string => {
    const [result] = codec.decode(datagram, true) as [DecodedPacket]
    return result.ok ? 'accepted' : result.twin === true ? `${result.reason} (twin)` : result.reason
  }
  // Not opened: a tag that would fail changes nothing (the packet is dropped either way).
  assert.equal(fromOwnSocket(us, echo), 'own')
  assert.equal(fromOwnSocket(us, broken), 'own', 'our echo from our socket is not opened')
  // From anywhere else our id is public: opened, a forgery counts as one.
  assert.equal(verdict(us, broken), 'bad_tag')
  assert.equal(verdict(us, echo), 'own')
  // A twin's packet (our id, a sequence we never sent) from our socket's address and port (the
  // group's, shared on one host): opened, and told apart as before.
  await tick()
  const twin = new V2Codec(farmKeys, 'us', clock)
  const fromTwin = twin.encode(newSession())
  assert.equal(fromOwnSocket(us, fromTwin), 'own (twin)')
  const brokenTwin = Buffer.from(fromTwin)
  brokenTwin[brokenTwin.length - 1] = (brokenTwin[brokenTwin.length - 1] as number) ^ 1
  assert.equal(fromOwnSocket(us, brokenTwin), 'bad_tag')
  // Another node of this host sends from that address and port too: its packets are opened and accepted.
  const neighbour = new V2Codec(farmKeys, 'neighbour', clock)
  assert.equal(fromOwnSocket(us, neighbour.encode(newSession())), 'accepted')
  // A batch of our echoes: none opened.
  const batch = frameBatchV2([us.encode(newSession()), us.encode(newSession()), us.encode(newSession())].map((p) => {
    p[p.length - 1] = (p[p.length - 1] as number) ^ 1
    return p
  }))
  assert.deepEqual(us.decode(batch, true).map((r) => r.ok ? 'accepted' : r.reason), ['own', 'own', 'own'])
  assert.deepEqual(us.decode(batch).map((r) => r.ok ? 'accepted' : r.reason), ['bad_tag', 'bad_tag', 'bad_tag'])
})
