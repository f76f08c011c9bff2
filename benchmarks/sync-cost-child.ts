/**
 * Run by the sync-cost suite (sync-cost.ts), under valgrind's callgrind, which counts the
 * instructions the process executes: a measure of CPU work that other tenants of a noisy
 * machine cannot move. Modes (CIPHER: chacha20-poly1305 or aes-256-gcm, the v2 packets' AEAD):
 * - `seal DIR COUNT`: seal COUNT New updates (150-byte sessions) as a busy peer does (V2Codec,
 *   DatagramBatcher) into DIR/datagrams-CIPHER.bin for each cipher, under a new farm secret
 *   DIR/farm.key. Not counted.
 * - `load DIR CIPHER`: start, read the datagrams, build the receiver; receive nothing. The baseline.
 * - `open DIR CIPHER`: as `load`, then open every update's seal (sync-aead.ts openPacket, the
 *   call decodeV2 makes) and nothing else: the floor that per-update authentication sets.
 * - `receive DIR CIPHER`: as `load`, then what the primary's sync service does with each datagram:
 *   V2Codec.decode (frame, AEAD, clock, replay window, body) and the session into L2.
 * Usage: node --single-threaded sync-cost-child.js MODE DIR [COUNT|CIPHER] → one JSON line {mode, updates}.
 * --single-threaded (no compiler or GC threads) makes the count repeat to within ~0.1%.
 */
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { PrimarySessionCache } from '../src/cache/primary-session-cache.js'
import { DatagramBatcher } from '../src/sync/batcher.js'
import { V2Codec } from '../src/sync/codecs.js'
import { FarmKeyRing } from '../src/sync/farm-keys.js'
import { loadFarmSecrets } from '../src/sync/farm-secret.js'
import { openPacket, SYNC_CIPHERS, type SyncCipher } from '../src/sync/sync-aead.js'
import { OFF_KEY_ID, splitDatagramV2, V2_HEADER_BYTES, V2_OVERHEAD_BYTES } from '../src/sync/wire-v2.js'

const [mode = '', dir = '', third = ''] = process.argv.slice(2)
const keyFile = path.join(dir, 'farm.key')
const datagramFile = (cipher: SyncCipher): string => path.join(dir, `datagrams-${cipher}.bin`)
const clock = { sessionTimeoutSeconds: 3600, maxSkewSeconds: 3600 }

if (mode === 'seal') {
  fs.writeFileSync(keyFile, randomBytes(48).toString('base64') + '\n', { mode: 0o600 })
  const count = Number(third)
  const session = randomBytes(150)
  const createdAt = Math.floor(Date.now() / 1000)
  for (const cipher of SYNC_CIPHERS) {
    const sender = new V2Codec(loadFarmSecrets([keyFile]), 'sync-cost-sender', { ...clock, cipher })
    const records: Buffer[] = []
    const batcher = new DatagramBatcher(sender.batching, (datagram) => {
      const length = Buffer.alloc(2)
      length.writeUInt16BE(datagram.length)
      records.push(length, datagram)
    })
    for (let i = 0; i < count; i++) batcher.add(sender.encode({ op: 'new', sessionId: randomBytes(32), session, createdAt }))
    batcher.flush()
    fs.writeFileSync(datagramFile(cipher), Buffer.concat(records))
  }
  process.stdout.write(JSON.stringify({ mode, updates: count }) + '\n')
} else if ((mode === 'load' || mode === 'open' || mode === 'receive') && (SYNC_CIPHERS as readonly string[]).includes(third)) {
  const cipher = third as SyncCipher
  const keys = loadFarmSecrets([keyFile])
  const file = fs.readFileSync(datagramFile(cipher))
  const datagrams: Buffer[] = []
  for (let at = 0; at < file.length; at += 2 + file.readUInt16BE(at)) datagrams.push(file.subarray(at + 2, at + 2 + file.readUInt16BE(at)))
  const receiver = new V2Codec(keys, 'sync-cost-receiver', clock)
  const cache = new PrimarySessionCache({ maxEntries: datagrams.length * 8, maxBytes: Number.MAX_SAFE_INTEGER, lifetimeSeconds: 3600 })
  const ring = new FarmKeyRing(keys)
  let updates = 0
  if (mode === 'open') {
    for (const datagram of datagrams) {
      const split = splitDatagramV2(datagram)
      if (!split.ok) throw new Error(`sync-cost: a sealed datagram did not split (${split.reason})`)
      for (const packet of split.packets) {
        const key = ring.byId(packet[OFF_KEY_ID] as number)
        if (key === undefined) throw new Error('sync-cost: unknown key id')
        if (openPacket(cipher, key, packet, V2_HEADER_BYTES, packet.length - V2_OVERHEAD_BYTES) === undefined) throw new Error('sync-cost: a seal did not open')
        updates++
      }
    }
  } else if (mode === 'receive') {
    for (const datagram of datagrams) {
      for (const result of receiver.decode(datagram)) {
        if (!result.ok || result.message.op !== 'new') throw new Error(`sync-cost: an update was refused (${result.ok ? result.message.op : result.reason})`)
        cache.addRemote(result.message.sessionId, { der: result.message.session, createdAt: result.message.createdAt })
        updates++
      }
    }
  }
  process.stdout.write(JSON.stringify({ mode, updates }) + '\n')
} else {
  process.stderr.write(`usage: sync-cost-child.js seal DIR COUNT | load|open|receive DIR ${SYNC_CIPHERS.join('|')}\n`)
  process.exit(2)
}
