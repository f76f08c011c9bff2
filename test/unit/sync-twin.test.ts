import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { test } from 'node:test'
import { V2Codec, type DecodedPacket } from '../../src/sync/codecs.js'
import { farmKeyId } from '../../src/sync/farm-secret.js'
import type { SyncMessage } from '../../src/sync/wire-v2.js'

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
