/**
 * Run by the sync suite (sync.ts), pinned to the client CPUs: seals `count` New packets under the
 * farm key (150-byte sessions), frames them into batch datagrams of up to 1400 bytes as a busy
 * peer's sync does, then sends them to HOST:PORT evenly over one second (100 ticks).
 * Usage: node sync-sender.js FARM_KEY_FILE HOST PORT COUNT [CIPHER] → a line "sending" when it starts
 * sending, then one JSON line {sent, datagrams, sendSeconds}.
 */
import crypto from 'node:crypto'
import dgram from 'node:dgram'
import { DatagramBatcher } from '../src/sync/batcher.js'
import { V2Codec } from '../src/sync/codecs.js'
import { loadFarmSecrets } from '../src/sync/farm-secret.js'
import { DEFAULT_SYNC_CIPHER, SYNC_CIPHERS } from '../src/sync/sync-aead.js'

const [keyFile = '', host = '127.0.0.1', portText = '0', countText = '0', cipherText = DEFAULT_SYNC_CIPHER] = process.argv.slice(2)
const count = Number(countText)
const cipher = SYNC_CIPHERS.find((c) => c === cipherText)
if (cipher === undefined) throw new Error(`sync-sender: the cipher is one of ${SYNC_CIPHERS.join(', ')}, got ${cipherText}`)
const [secret] = loadFarmSecrets([keyFile])
if (secret === undefined) throw new Error('sync-sender: no farm secret')
// A peer node's codec and batcher, as its sync service uses them (a random name: a new sender each run).
const codec = new V2Codec([secret], `bench-sender-${crypto.randomUUID()}`, { sessionTimeoutSeconds: 3600, maxSkewSeconds: 5, cipher })
const der = crypto.randomBytes(150)
const createdAt = Math.floor(Date.now() / 1000)
const ids = crypto.randomBytes(32 * count)

// Sealed and framed beforehand, in sequence order, so the timed second only sends: all in one
// turn of the event loop, as a node whose workers made them all at once would batch them.
const datagrams: Array<{ datagram: Buffer; updates: number }> = []
const batcher = new DatagramBatcher(codec.batching, (datagram, updates) => datagrams.push({ datagram, updates }))
for (let i = 0; i < count; i++) batcher.add(codec.encode({ op: 'new', sessionId: ids.subarray(i * 32, i * 32 + 32), session: der, createdAt }))
batcher.flush()

const socket = dgram.createSocket('udp4')
await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
const port = Number(portText)
process.stdout.write('sending\n')
const started = performance.now()
let sent = 0
let next = 0
for (let tick = 0; tick < 100; tick++) {
  const tickEnd = Math.round(((tick + 1) / 100) * count)
  for (; next < datagrams.length && sent < tickEnd; next++) {
    const d = datagrams[next] as { datagram: Buffer; updates: number }
    socket.send(d.datagram, port, host)
    sent += d.updates
  }
  const wait = started + (tick + 1) * 10 - performance.now()
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)))
}
const sendSeconds = (performance.now() - started) / 1000
await new Promise((resolve) => setTimeout(resolve, 50))
socket.close()
process.stdout.write(JSON.stringify({ sent, datagrams: next, sendSeconds }) + '\n')
