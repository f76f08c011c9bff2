import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import dgram from 'node:dgram'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { FarmKeyRing } from '../../src/sync/farm-keys.js'
import { farmKeyId } from '../../src/sync/farm-secret.js'
import { createSequenceCounter, encodeV2, type SyncMessage } from '../../src/sync/wire-v2.js'
import { startFarm, writeFarmSecret, type FarmNode } from '../helpers/farm.js'
import { eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

// A node that refuses every packet of a sender says so in its log, once, in words that name
// the mistake; the test plays the misconfigured peers with real UDP sockets.
let farm: Awaited<ReturnType<typeof startFarm>>
let secret: Buffer
let node: FarmNode
const sockets: dgram.Socket[] = []

before(async () => {
  farm = await startFarm(['127.0.0.1'], { sync: (_i, ports) => ['--sync-listen', `127.0.0.1:${ports[0] as number}`, '--sync-max-skew', '10'] })
  node = farm.nodes[0] as FarmNode
  secret = fs.readFileSync(farm.secret).subarray(0, -1)
})

after(async () => {
  for (const s of sockets) s.close()
  await farm?.stop()
})

/** A peer on its own source port; each packet sealed with `key` and dated `aheadMs` from now. */
async function peer (): Promise<{ send: (key?: Buffer, aheadMs?: number) => Promise<void>; port: number }> {
  const socket = dgram.createSocket('udp4')
  sockets.push(socket)
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  const nodeId = crypto.randomBytes(8)
  const nextSequence = createSequenceCounter()
  const message = (): SyncMessage => ({ op: 'new', sessionId: crypto.randomBytes(32), session: crypto.randomBytes(120), createdAt: Math.floor(Date.now() / 1000) })
  const send = async (key = secret, aheadMs = 0): Promise<void> => {
    const packet = encodeV2(message(), { keyRing: new FarmKeyRing([{ id: farmKeyId(key), secret: key }]), nodeId, nextSequence, now: () => Date.now() + aheadMs })
    await new Promise<void>((resolve, reject) => socket.send(packet, node.sync, '127.0.0.1', (err) => err === null ? resolve() : reject(err)))
  }
  return { send, port: socket.address().port }
}

/** A secret whose key id is not ours. */
function otherSecret (): Buffer {
  for (;;) {
    const candidate = crypto.randomBytes(48)
    if (farmKeyId(candidate) !== farmKeyId(secret)) return candidate
  }
}

const refusals = (n: RunningNode, from: number): Array<Record<string, unknown>> =>
  n.logs.filter((l) => l.level === 40 && typeof l.msg === 'string' && l.msg.startsWith(`sync packets from 127.0.0.1:${from} are all refused`))

test('a sender with another farm secret: one warning naming its key id and ours, not one per packet', async () => {
  const other = otherSecret()
  const wrong = await peer()
  for (let i = 0; i < 5; i++) await wrong.send(other)
  await eventually(() => refusals(node.node, wrong.port).length > 0, 5000, 'the warning')
  await new Promise((resolve) => setTimeout(resolve, 300))
  const lines = refusals(node.node, wrong.port)
  assert.equal(lines.length, 1, JSON.stringify(lines))
  assert.equal(lines[0]?.msg, `sync packets from 127.0.0.1:${wrong.port} are all refused (unknown_key: sealed with key id ${farmKeyId(other)}, this node holds ${farmKeyId(secret)}): is its --sync-secret-file the farm's?`)
})

test('a sender whose clock is ahead: the warning says by how much, and the allowed skew', async () => {
  const ahead = await peer()
  await ahead.send(secret, 30_000)
  await eventually(() => refusals(node.node, ahead.port).length > 0, 5000, 'the warning')
  assert.equal(refusals(node.node, ahead.port)[0]?.msg, `sync packets from 127.0.0.1:${ahead.port} are all refused (future: dated 30 s ahead of this clock (--sync-max-skew 10 s)): check NTP on both nodes`)
})

test('a sender with accepted packets is not warned about for an occasional refusal', async () => {
  const good = await peer()
  const accepted = await node.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' })
  await good.send()
  await eventually(async () => await node.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' }) > accepted, 5000, 'accepted')
  const future = await node.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'future' })
  await good.send(secret, 60_000)
  await eventually(async () => await node.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'future' }) > future, 5000, 'refused')
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.equal(refusals(node.node, good.port).length, 0)
})

test('a warm join whose responder seals with a key the joiner lacks: the joiner says why it got nothing', async () => {
  // The responder holds its current secret and the joiner's (a key change under way); the
  // joiner only the old one: the responder opens the request, the joiner not the challenge.
  const old = writeFarmSecret(farm.dir, 'old.key')
  const [port, admin, sync] = await freePorts(3) as [number, number, number]
  const responder = farm.nodes[0] as FarmNode
  await responder.node.stop()
  responder.node = await startNode([...responder.args, '--sync-secret-file', old], { adminPort: responder.admin })
  const joiner = await startNode([
    '--workers', '1', '--listen', `127.0.0.2:${port}`, '--cert', farm.cert, '--node-id', 'joiner', '--sync-secret-file', old,
    '--state-dir', path.join(farm.dir, 'state-joiner'), '--warm-join-timeout', '1',
    '--sync-listen', `127.0.0.2:${sync}`, '--sync-peer', `127.0.0.1:${responder.sync}`
  ], { adminPort: admin })
  try {
    const oldId = farmKeyId(fs.readFileSync(old).subarray(0, -1))
    const done = joiner.logs.find((l) => l.msg === 'warm join done')
    assert.deepEqual(done?.refused, { unknown_key: 1 }, JSON.stringify(done))
    assert.ok(joiner.logs.some((l) => l.level === 40 && String(l.msg).startsWith('warm join got nothing: the peers\' packets were refused (unknown_key 1)')), joiner.diagnosis())
    assert.ok(refusals(joiner, responder.sync).some((l) => String(l.msg).includes(`(unknown_key: sealed with key id ${farmKeyId(secret)}, this node holds ${oldId})`)), joiner.diagnosis())
  } finally {
    await joiner.stop()
  }
})
