import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import dgram from 'node:dgram'
import fs from 'node:fs'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { FarmKeyRing } from '../../src/sync/farm-keys.js'
import { farmKeyId } from '../../src/sync/farm-secret.js'
import { ReplayGuard } from '../../src/sync/replay-guard.js'
import { createSequenceCounter, decodeV2, encodeV2, frameBatchV2, MAX_UDP_PAYLOAD_BYTES, type SnapshotCookie, type SyncMessage } from '../../src/sync/wire-v2.js'
import { DEFAULT_SESSION_ID_CONTEXT } from '../../src/tls/client-auth.js'
import { loadCertificateFile } from '../../src/tls/certificates.js'
import { choiceSessionIdContext } from '../../src/tls/secure-contexts.js'
import { eventually } from '../helpers/node-process.js'
import { startFarm } from '../helpers/farm.js'
import { nodeClient, sessionIdOf } from '../helpers/tls-client.js'
import { UdpRecorder } from '../helpers/udp-recorder.js'

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

async function send (packet: Buffer, port = node().sync): Promise<void> {
  await new Promise<void>((resolve, reject) => sender.send(packet, port, '127.0.0.1', (err) => err === null ? resolve() : reject(err)))
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

// TLS 1.2 without tickets: the session ID is what resumes.
const TLS12_ID = { maxVersion: 'TLSv1.2', noTicket: true } as const

test('a client offering another client\'s session ID with the extended master secret on gets a full handshake; the session stays, its owner resumes it', async () => {
  const { host, port } = node()
  const invalidated = await node().node.metric('tlsfleet_sessions_invalidated_total')
  const declined = await node().node.metric('tlsfleet_sessions_declined_total')
  // The victim, an old client: no extended master secret (RFC 7627).
  const victim = await nodeClient(host, port, { ...TLS12_ID, noEms: true })
  assert.equal((await nodeClient(host, port, { ...TLS12_ID, noEms: true, session: victim.session })).reused, true, 'the victim resumes')
  // The ID travels in clear in TLS 1.2; offered with EMS on, OpenSSL declines the session (EMS
  // mismatch): the client's reason, not the session's. It was dropped from L1, L2 and the farm.
  assert.equal((await nodeClient(host, port, { ...TLS12_ID, session: victim.session })).reused, false)
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal((await nodeClient(host, port, { ...TLS12_ID, noEms: true, session: victim.session })).reused, true, 'the victim\'s session was dropped by another client\'s offer')
  assert.equal(await node().node.metric('tlsfleet_sessions_invalidated_total'), invalidated)
  // Counted as declined (metrics are collected at most once a second).
  await eventually(async () => await node().node.metric('tlsfleet_sessions_declined_total') === declined + 1, 5000, 'the declined offer counted')
})

test('a supplied session bad in itself (past its own timeout, or unreadable) is still dropped: counted, gone from L2', async () => {
  // Sessions of a server of the test's, under the node's session-ID context (its certificate's),
  // with 1 s of life of their own: the client's copy offers the ID, the node gets the server's
  // over the sync.
  const pem = fs.readFileSync(farm.cert, 'utf8')
  const sessionIdContext = choiceSessionIdContext(DEFAULT_SESSION_ID_CONTEXT, [loadCertificateFile(farm.cert)])
  const server = tls.createServer({ key: pem, cert: pem, sessionIdContext, maxVersion: 'TLSv1.2', secureOptions: crypto.constants.SSL_OP_NO_TICKET, sessionTimeout: 1 })
  const made: Array<{ id: Buffer; der: Buffer }> = []
  server.on('newSession', (id: Buffer, der: Buffer, done: () => void) => { made.push({ id, der }); done() })
  server.on('secureConnection', (socket) => socket.end())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const serverPort = (server.address() as { port: number }).port
  const clients = [await nodeClient('127.0.0.1', serverPort, TLS12_ID), await nodeClient('127.0.0.1', serverPort, TLS12_ID)]
  server.close()
  const [expired, unreadable] = made as [typeof made[0], typeof made[0]]
  const entries = await node().node.metric('tlsfleet_session_cache_entries')
  const createdAt = Math.floor(Date.now() / 1000)
  // L2 keeps both for --session-timeout (300 s): the creation time the sync carries is now.
  await send(seal({ op: 'new', sessionId: expired.id, session: expired.der, createdAt }))
  await send(seal({ op: 'new', sessionId: unreadable.id, session: crypto.randomBytes(expired.der.length), createdAt }))
  await eventually(async () => await node().node.metric('tlsfleet_session_cache_entries') === entries + 2, 5000, 'both sessions in L2')
  await new Promise((resolve) => setTimeout(resolve, 2100)) // past the session's own second
  const invalidated = await node().node.metric('tlsfleet_sessions_invalidated_total')
  for (const client of clients) assert.equal((await nodeClient(node().host, node().port, { ...TLS12_ID, session: client.session })).reused, false)
  await eventually(async () => await node().node.metric('tlsfleet_sessions_invalidated_total') === invalidated + 2, 5000, 'both counted')
  // Gone from L1 and L2: offered again, nothing is supplied, nothing refused (the full
  // handshakes above made two sessions of their own, in place of the two dropped).
  await new Promise((resolve) => setTimeout(resolve, 300))
  for (const client of clients) assert.equal((await nodeClient(node().host, node().port, { ...TLS12_ID, session: client.session })).reused, false)
  assert.equal(await node().node.metric('tlsfleet_sessions_invalidated_total'), invalidated + 2)
})

test('a peer\'s Del reaches the workers\' L1 even when L2 has already evicted the session (L1 hits never touch L2)', async () => {
  const small = await startFarm(['127.0.0.1'], { sync: (_i, ports) => ['--sync-listen', `127.0.0.1:${ports[0] as number}`], extra: ['--cache-size', '5'] })
  try {
    const target = small.nodes[0] as typeof small.nodes[0]
    const key = fs.readFileSync(small.secret).subarray(0, -1)
    const client = await nodeClient(target.host, target.port, TLS12_ID)
    assert.equal((await nodeClient(target.host, target.port, { ...TLS12_ID, session: client.session })).reused, true, 'an L1 hit')
    // 8 newer sessions: L2 (5 entries) evicts the client's, which L1 still serves.
    for (let i = 0; i < 8; i++) await send(seal(newSession(), key, farmKeyId(key)), target.sync)
    await eventually(async () => await target.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' }) === 8, 5000, 'the 8 sessions accepted')
    assert.equal(await target.node.metric('tlsfleet_session_cache_entries'), 5)
    await send(seal({ op: 'del', sessionId: sessionIdOf(client.session) }, key, farmKeyId(key)), target.sync)
    await eventually(async () => await target.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' }) === 9, 5000, 'the Del accepted')
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.equal((await nodeClient(target.host, target.port, { ...TLS12_ID, session: client.session })).reused, false, 'the worker still resumed a session the farm deleted')
  } finally {
    await small.stop()
  }
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

/** What a test socket received from the node, opened with the farm key as a peer would. */
function opened (packets: Buffer[]): SyncMessage[] {
  const ctx = { keyRing: new FarmKeyRing([{ id: farmKeyId(secret), secret }]), ownNodeId: peerId, replay: new ReplayGuard(), now: Date.now, sessionLifetimeSeconds: 300, maxSkewSeconds: 5, maxPacketBytes: MAX_UDP_PAYLOAD_BYTES }
  return packets.map((p) => {
    const result = decodeV2(p, ctx)
    if (!result.ok) assert.fail(`the node sent something that does not open: ${result.reason}`)
    return result.message
  })
}

const snapshots = async (result: string): Promise<number> => await node().node.metric('tlsfleet_sync_snapshot_requests_total', { result })

test('a snapshot request from an address that never completed the round trip gets one challenge no bigger than itself, never session data', async () => {
  const victim = await UdpRecorder.bind('127.0.0.1')
  const other = await UdpRecorder.bind('127.0.0.1')
  try {
    // An authenticated request with the victim's source address (what a spoofer, or a replay, would bring).
    const request = seal({ op: 'snapshot-request', requestId: 77 })
    await victim.send(request, node().sync)
    await eventually(() => victim.received.length >= 1, 5000, 'the challenge')
    await new Promise((resolve) => setTimeout(resolve, 500))
    assert.equal(victim.received.length, 1, 'more than one datagram went to an unverified address')
    const reply = victim.received[0]?.packet as Buffer
    assert.ok(reply.length <= request.length, `challenge of ${reply.length} bytes for a request of ${request.length}`)
    const [challenge] = opened([reply])
    assert.equal(challenge?.op, 'snapshot-challenge')
    const cookie = (challenge as { cookie: SnapshotCookie }).cookie

    // The cookie echoed from another address: refused, nothing sent anywhere.
    const badCookies = await snapshots('bad_cookie')
    await other.send(seal({ op: 'snapshot-request', requestId: 77, cookie }), node().sync)
    await eventually(async () => await snapshots('bad_cookie') === badCookies + 1, 5000, 'bad_cookie counted')
    assert.equal(other.received.length, 0)

    // Echoed from the address it was sent to (the round trip done): the snapshot, to that address only.
    await victim.send(seal({ op: 'snapshot-request', requestId: 77, cookie }), node().sync)
    await eventually(() => opened(victim.received.slice(1).map((d) => d.packet)).some((m) => m.op === 'snapshot-chunk' && m.last), 5000, 'the last chunk')
    const chunks = opened(victim.received.slice(1).map((d) => d.packet)).filter((m) => m.op === 'snapshot-chunk')
    const sessions = chunks.reduce((sum, m) => sum + (m.op === 'snapshot-chunk' ? m.sessions.length : 0), 0)
    assert.equal(sessions, await node().node.metric('tlsfleet_session_cache_entries'), 'the snapshot is the node\'s L2')
    assert.equal(other.received.length, 0)
  } finally {
    victim.close()
    other.close()
  }
})

test('verified snapshot requests are rate-limited per address: a burst of 4, then refused and counted', async () => {
  const asker = await UdpRecorder.bind('127.0.0.3')
  try {
    const answered = await snapshots('answered')
    const limited = await snapshots('rate_limited')
    for (let round = 1; round <= 5; round++) {
      const seen = asker.received.length
      await asker.send(seal({ op: 'snapshot-request', requestId: round }), node().sync, '127.0.0.1')
      await eventually(() => asker.received.length > seen, 5000, `challenge ${round}`)
      const [challenge] = opened([asker.received[seen]?.packet as Buffer])
      await asker.send(seal({ op: 'snapshot-request', requestId: round, cookie: (challenge as { cookie: SnapshotCookie }).cookie }), node().sync, '127.0.0.1')
      await eventually(async () => await snapshots('answered') + await snapshots('rate_limited') === answered + limited + round, 5000, `round ${round} decided`)
    }
    assert.equal(await snapshots('answered'), answered + 4)
    assert.equal(await snapshots('rate_limited'), limited + 1)
  } finally {
    asker.close()
  }
})

test('senders of nothing authenticated cannot crowd /v1/peers: kept apart, the most recent 256; a sender is promoted by its first authenticated packet', async () => {
  type Peer = { address: string; packetsIn: number; configured: boolean; rejected: Record<string, number> }
  const peers = async (): Promise<Peer[]> => ((await (await fetch(`${node().node.adminUrl}/v1/peers`)).json()) as { peers: Peer[] }).peers
  const junk = crypto.randomBytes(40)
  const sockets: dgram.Socket[] = []
  try {
    // 300 source ports, one junk datagram each (bounded: 300 sockets, closed below).
    for (let i = 0; i < 300; i++) {
      const s = dgram.createSocket('udp4')
      await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
      sockets.push(s)
      await new Promise<void>((resolve, reject) => s.send(junk, node().sync, '127.0.0.1', (err) => err === null ? resolve() : reject(err)))
    }
    await eventually(async () => (await peers()).some((p) => p.address === `127.0.0.1:${(sockets.at(-1) as dgram.Socket).address().port}`), 5000, 'the last junk sender listed')
    const listed = await peers()
    const strangers = listed.filter((p) => p.packetsIn === 0 && Object.keys(p.rejected).length > 0)
    assert.ok(strangers.length <= 256, `${strangers.length} junk senders listed`)
    assert.ok(!listed.some((p) => p.address === `127.0.0.1:${(sockets[0] as dgram.Socket).address().port}`), 'the oldest junk sender was forgotten')
    // The honest sender of the first test is still there, with its accepted packets.
    const honest = listed.find((p) => p.address === `127.0.0.1:${sender.address().port}`)
    assert.ok(honest !== undefined && honest.packetsIn >= 1, JSON.stringify(honest))
    // A junk sender that then sends an authenticated packet moves over, its rejections kept.
    const turned = sockets.at(-1) as dgram.Socket
    await new Promise<void>((resolve, reject) => turned.send(seal(newSession()), node().sync, '127.0.0.1', (err) => err === null ? resolve() : reject(err)))
    await eventually(async () => ((await peers()).find((p) => p.address === `127.0.0.1:${turned.address().port}`)?.packetsIn ?? 0) === 1, 5000, 'promoted')
    const promoted = (await peers()).filter((p) => p.address === `127.0.0.1:${turned.address().port}`)
    assert.equal(promoted.length, 1, 'listed once')
    assert.ok(Object.values(promoted[0]?.rejected ?? {}).reduce((a, b) => a + b, 0) >= 1, 'its rejection kept')
  } finally {
    for (const s of sockets) s.close()
  }
})
