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
 *
 * Refused datagrams, per datagram (the rows of the suite's second table):
 * - `seal DIR COUNT REFUSED` also writes, per cipher, DIR/forged-CIPHER.bin: REFUSED lone New
 *   packets (as above) with the last byte of their tag flipped, and DIR/forged-batch-CIPHER.bin:
 *   REFUSED batches of as many Del packets (1-byte ids) as fit 1400 bytes (22), every tag flipped.
 *   It also writes DIR/own.bin and DIR/own-batch.bin: REFUSED lone New packets, and REFUSED
 *   batches of 5 New, sealed (default cipher) by the node the refused modes run as: our echo.
 * - `refused-load DIR`: start, read the six refused files, build the receiver. Their baseline.
 * - `refused DIR SET`: as `refused-load`, then V2Codec.decode each datagram of SET. SET
 *   forged-CIPHER or forged-batch-CIPHER: every packet must be refused `bad_tag` (a batch's first
 *   two opened, the rest counted like them unopened: codecs.ts). SET own or own-batch, decoded as
 *   from our own socket: every packet refused `own`, before the AEAD open (wire-v2.ts decodeV2),
 *   as our node id with a sequence this node sent (before this process started: V2Codec counts
 *   those as ours, the echo of a previous run, the same check as for a sequence sent since).
 *   (Sealed in the counted process instead, the sealed packets on its heap moved where major
 *   GCs fell, and with them the own-batch count, by ±30% with the number of datagrams.)
 * Usage: node --single-threaded sync-cost-child.js MODE DIR [COUNT|CIPHER|SET] ... → one JSON line
 * {mode, updates} (refused modes: {mode, datagrams, packets, refused, bytes}).
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
import { frameBatchV2, MAX_SMALL_PACKET_BYTES, OFF_KEY_ID, splitDatagramV2, V2_BATCH_HEADER_BYTES, V2_BATCH_RECORD_OVERHEAD, V2_HEADER_BYTES, V2_OVERHEAD_BYTES } from '../src/sync/wire-v2.js'

const [mode = '', dir = '', third = '', fourth = ''] = process.argv.slice(2)
const keyFile = path.join(dir, 'farm.key')
const datagramFile = (cipher: SyncCipher): string => path.join(dir, `datagrams-${cipher}.bin`)
const clock = { sessionTimeoutSeconds: 3600, maxSkewSeconds: 3600 }
const FORGED_SETS = SYNC_CIPHERS.flatMap((cipher) => [`forged-${cipher}`, `forged-batch-${cipher}`])
const REFUSED_SETS = [...FORGED_SETS, 'own', 'own-batch']
/** The node the refused modes run as, which sealed own.bin and own-batch.bin. */
const NODE = 'sync-cost-node'
/** Packets in each own-echo batch: as many as the suite's sealed updates share a datagram. */
const OWN_BATCH = 5

/** Length-prefixed datagrams in one buffer (as a file holds them). */
function pack (datagrams: Buffer[]): Buffer {
  const records: Buffer[] = []
  for (const datagram of datagrams) {
    const length = Buffer.alloc(2)
    length.writeUInt16BE(datagram.length)
    records.push(length, datagram)
  }
  return Buffer.concat(records)
}

function unpack (bytes: Buffer): Buffer[] {
  const datagrams: Buffer[] = []
  for (let at = 0; at < bytes.length; at += 2 + bytes.readUInt16BE(at)) datagrams.push(bytes.subarray(at + 2, at + 2 + bytes.readUInt16BE(at)))
  return datagrams
}

/** The packet with the last byte of its AEAD tag flipped: a forgery that fails only at the tag. */
function flipTag (packet: Buffer): Buffer {
  packet[packet.length - 1] = (packet[packet.length - 1] as number) ^ 0x01
  return packet
}

/** What a refused-datagram mode did, for the suite to check: every packet refused as expected. */
function decodeRefused (codec: V2Codec, datagrams: Buffer[], reason: 'bad_tag' | 'own', fromOwnSocket: boolean): { packets: number; refused: number } {
  let packets = 0
  let refused = 0
  for (const datagram of datagrams) {
    for (const result of codec.decode(datagram, fromOwnSocket)) {
      packets++
      if (!result.ok && result.reason === reason && !('twin' in result && result.twin === true)) refused++
    }
  }
  return { packets, refused }
}

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
    // Forgeries, sealed by the farm key and then altered: what fails only at the AEAD tag.
    const forged: Buffer[] = []
    for (let i = 0; i < Number(fourth); i++) forged.push(flipTag(sender.encode({ op: 'new', sessionId: randomBytes(32), session, createdAt })))
    fs.writeFileSync(path.join(dir, `forged-${cipher}.bin`), pack(forged))
    // The smallest packet a sealed batch can hold (a Del of a 1-byte id, 61 bytes): the most
    // packets per datagram (22), the forger's best case against a per-packet cost.
    const del = (): Buffer => flipTag(sender.encode({ op: 'del', sessionId: randomBytes(1) }))
    const perBatch = Math.floor((MAX_SMALL_PACKET_BYTES - V2_BATCH_HEADER_BYTES) / (V2_BATCH_RECORD_OVERHEAD + del().length))
    const batches: Buffer[] = []
    for (let i = 0; i < Number(fourth); i++) batches.push(frameBatchV2(Array.from({ length: perBatch }, del)))
    fs.writeFileSync(path.join(dir, `forged-batch-${cipher}.bin`), pack(batches))
  }
  // Our echo: sealed by the node the refused modes run as.
  const node = new V2Codec(loadFarmSecrets([keyFile]), NODE, clock)
  const own = (): Buffer => node.encode({ op: 'new', sessionId: randomBytes(32), session, createdAt })
  const refused = Number(fourth)
  fs.writeFileSync(path.join(dir, 'own.bin'), pack(Array.from({ length: refused }, own)))
  fs.writeFileSync(path.join(dir, 'own-batch.bin'), pack(Array.from({ length: refused }, () => frameBatchV2(Array.from({ length: OWN_BATCH }, own)))))
  process.stdout.write(JSON.stringify({ mode, updates: count }) + '\n')
} else if ((mode === 'refused-load' && third === '') || (mode === 'refused' && REFUSED_SETS.includes(third))) {
  const sets = new Map(REFUSED_SETS.map((set) => [set, unpack(fs.readFileSync(path.join(dir, `${set}.bin`)))]))
  const receiver = new V2Codec(loadFarmSecrets([keyFile]), NODE, clock)
  const datagrams = sets.get(third) ?? []
  const own = third.startsWith('own')
  const { packets, refused } = mode === 'refused' ? decodeRefused(receiver, datagrams, own ? 'own' : 'bad_tag', own) : { packets: 0, refused: 0 }
  process.stdout.write(JSON.stringify({ mode, datagrams: datagrams.length, packets, refused, bytes: datagrams[0]?.length ?? 0 }) + '\n')
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
  process.stderr.write(`usage: sync-cost-child.js seal DIR COUNT REFUSED | load|open|receive DIR ${SYNC_CIPHERS.join('|')} | refused-load DIR | refused DIR ${REFUSED_SETS.join('|')}\n`)
  process.exit(2)
}
