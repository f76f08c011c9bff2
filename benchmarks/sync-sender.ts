/**
 * Run by the sync suite (sync.ts), pinned to the client CPUs: seals `count` New packets under the
 * farm key (150-byte sessions), frames them into batch datagrams of up to 1400 bytes as a busy
 * peer's sync does, then sends them to HOST:PORT evenly over one second (100 ticks).
 * Usage: node sync-sender.js FARM_KEY_FILE HOST PORT COUNT → a line "sending" when it starts
 * sending, then one JSON line {sent, datagrams, sendSeconds}.
 */
import crypto from 'node:crypto'
import dgram from 'node:dgram'
import { FarmKeyRing } from '../src/sync/farm-keys.js'
import { loadFarmSecrets } from '../src/sync/farm-secret.js'
import { batchBytesV2, createSequenceCounter, encodeV2, frameBatchV2, MAX_SMALL_PACKET_BYTES } from '../src/sync/wire-v2.js'

const [keyFile = '', host = '127.0.0.1', portText = '0', countText = '0'] = process.argv.slice(2)
const count = Number(countText)
const [secret] = loadFarmSecrets([keyFile])
if (secret === undefined) throw new Error('sync-sender: no farm secret')
const ctx = { keyRing: new FarmKeyRing([secret]), nodeId: crypto.randomBytes(8), nextSequence: createSequenceCounter() }
const der = crypto.randomBytes(150)
const createdAt = Math.floor(Date.now() / 1000)
const ids = crypto.randomBytes(32 * count)

// Sealed and framed beforehand, in sequence order, so the timed second only sends.
const datagrams: Array<{ datagram: Buffer; updates: number }> = []
let group: Buffer[] = []
const close = (): void => {
  if (group.length > 0) datagrams.push({ datagram: group.length === 1 ? group[0] as Buffer : frameBatchV2(group), updates: group.length })
  group = []
}
for (let i = 0; i < count; i++) {
  const packet = encodeV2({ op: 'new', sessionId: ids.subarray(i * 32, i * 32 + 32), session: der, createdAt }, ctx)
  if (group.length > 0 && batchBytesV2([...group, packet].map((p) => p.length)) > MAX_SMALL_PACKET_BYTES) close()
  group.push(packet)
}
close()

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
