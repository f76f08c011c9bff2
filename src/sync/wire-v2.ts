/**
 * Sync wire format v2 (the default): sealed with ChaCha20-Poly1305 (version byte 3, the default)
 * or AES-256-GCM (version byte 2), header authenticated, sessions encrypted (sync-aead.ts).
 * Pure codec, no sockets. Byte layout, nonce choice and checks: docs/wire-protocol.md.
 *
 *   type SyncMessage =
 *     | { op: 'new'; sessionId: Buffer; session: Buffer; createdAt: number /* unix s *\/ }
 *     | { op: 'del'; sessionId: Buffer }
 *     | { op: 'snapshot-request'; requestId: number; cookie?: SnapshotCookie /* the echo *\/ }
 *     | { op: 'snapshot-challenge'; requestId: number; cookie: SnapshotCookie }
 *     | { op: 'snapshot-chunk'; requestId: number; sessions: SnapshotEntry[]; last: boolean }
 *   interface EncodeContext { keyRing; nodeId /* 8 bytes *\/; nextSequence (): bigint;
 *                             cipher? /* SyncCipher, default chacha20-poly1305 *\/;
 *                             now? (): number /* ms *\/; maxPacketBytes? /* chunks, <= 65507 *\/;
 *                             randomBytes? (n): Buffer /* tests only: fixed nonces *\/ }
 *   encodeV2 (msg, ctx): Buffer                  throws (RangeError/Error) on bad input
 *   encodedLengthV2 (msg): number                size encodeV2 would produce (to fill chunks)
 *   packetLimitV2 (op, maxPacketBytes?): number  the size limit that applies to an op
 *   sealV2 (op: number, body: Buffer, ctx): Buffer   low level (arbitrary body; tests use it)
 *   interface DecodeContext { keyRing; ownNodeId; replay: ReplayGuard; now (): number /* ms *\/;
 *                             sessionLifetimeSeconds; maxSkewSeconds; maxPacketBytes;
 *                             notBeforeMs?; repliesNotBeforeMs?; beforeAccept? (sentAtMs);
 *                             ownPacket? (sequence, sentAtMs): boolean }
 *   type DecodeResult = { ok: true; message; sender /* node id, hex *\/; sequence; keyId; sentAtMs }
 *                     | { ok: false; reason: RejectReason; twin?: true /* our id, not our packet *\/ } & RefusalDetail
 *   decodeV2 (packet, ctx, fromOwnSocket?): DecodeResult   never throws on any packet
 *   createSequenceCounter (startMs?): () => bigint
 *   frameBatchV2 (packets): Buffer               several sealed New/Del packets in one datagram
 *   batchBytesV2 (packetBytes[]): number         size frameBatchV2 would produce
 *   splitDatagramV2 (datagram): SplitResult      a datagram's packets (one, or a batch's), never throws
 *   batchedPacketOk (packet): boolean            New or Del: what a batch may carry
 *
 * decodeV2 checks cheap, unauthenticated things first (size, magic, version, op, lengths, key id,
 * own node id), then the AEAD tag (whichever cipher the version byte names: a receiver reads
 * both, so a farm can change its sender's cipher node by node), and only then anything whose answer depends on the content
 * (times, the not-before floors, replay window, body). The replay window is committed only when a
 * packet is accepted, after `beforeAccept` (which persists what a restart needs to refuse it).
 * Stale entries of a snapshot chunk are dropped from the result (not the whole chunk); an entry
 * from the future rejects the chunk ('future').
 */
import { randomFillSync } from 'node:crypto'
import type { FarmKeyRing } from './farm-keys.js'
import type { RejectReason } from './reject-reasons.js'
import type { ReplayGuard } from './replay-guard.js'
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES, cipherOfVersion, DEFAULT_SYNC_CIPHER, openPacket, sealInPlace, VERSION_OF_CIPHER, type SyncCipher } from './sync-aead.js'

export interface SnapshotEntry { sessionId: Buffer; session: Buffer; createdAt: number }

/**
 * An address-validation cookie (snapshot-gate.ts makes and checks them): the responder's MAC
 * over the requester's address, node id, request id and `issuedAt` (unix s, never 0).
 */
export interface SnapshotCookie { issuedAt: number; mac: Buffer }

export type SyncMessage =
  | { op: 'new'; sessionId: Buffer; session: Buffer; createdAt: number }
  | { op: 'del'; sessionId: Buffer }
  | { op: 'snapshot-request'; requestId: number; cookie?: SnapshotCookie }
  | { op: 'snapshot-challenge'; requestId: number; cookie: SnapshotCookie }
  | { op: 'snapshot-chunk'; requestId: number; sessions: SnapshotEntry[]; last: boolean }

export type SyncOp = SyncMessage['op']

export const V2_MAGIC = Buffer.from([0x54, 0x46]) // "TF"
/**
 * A batch frame's version byte. A packet's own version byte names the cipher that sealed it
 * (VERSION_OF_CIPHER in sync-aead.ts: 2 AES-256-GCM, 3 ChaCha20-Poly1305); the layout is one.
 */
export const V2_VERSION = 2
export const V2_NONCE_BYTES = AEAD_NONCE_BYTES
export const V2_TAG_BYTES = AEAD_TAG_BYTES
export const V2_HEADER_BYTES = 43
export const V2_OVERHEAD_BYTES = V2_HEADER_BYTES + V2_TAG_BYTES
export const NODE_ID_BYTES = 8
export const MAX_SESSION_ID_BYTES = 32
/** New, Del and SnapshotRequest fit an Ethernet MTU (1500 - IPv6 40 - UDP 8, with margin). */
export const MAX_SMALL_PACKET_BYTES = 1400
/** Largest UDP payload over IPv4; the ceiling for SnapshotChunk packets. */
export const MAX_UDP_PAYLOAD_BYTES = 65507

export const OP_CODES: Readonly<Record<SyncOp, number>> = {
  new: 1,
  del: 2,
  'snapshot-request': 3,
  'snapshot-chunk': 4,
  // 5 is a batch's frame (below)
  'snapshot-challenge': 6
}

/** Bytes of a cookie's MAC. */
export const COOKIE_MAC_BYTES = 16
/**
 * A request's body always has room for a cookie (zeros when it carries none), so a challenge,
 * whose body is the same size, is never bigger than the request that caused it.
 */
const SNAPSHOT_REQUEST_BODY_BYTES = 4 + 4 + COOKIE_MAC_BYTES
/** Answers to a request of ours: bound to its random request id, not to the not-before floor of updates. */
const REPLY_OPS: ReadonlySet<SyncOp> = new Set(['snapshot-challenge', 'snapshot-chunk'])
const OP_NAMES = new Map<number, SyncOp>(Object.entries(OP_CODES).map(([name, code]) => [code, name as SyncOp]))

const CHUNK_FLAG_LAST = 0x01
const MAX_U32 = 0xffffffff
const MAX_U64 = (1n << 64n) - 1n

// Header offsets (docs/wire-protocol.md has the table).
const OFF_VERSION = 2
/** Exported for the sync-cost bench, which opens packets the way decodeV2 does. */
export const OFF_KEY_ID = 3
const OFF_OP = 4
const OFF_NODE_ID = 5
const OFF_SEQUENCE = 13
const OFF_SENT_AT = 21
const OFF_BODY_LEN = 29
/** Exported for the sync-cost bench (see OFF_KEY_ID). */
export const OFF_NONCE = 31

export interface EncodeContext {
  keyRing: FarmKeyRing
  nodeId: Buffer
  nextSequence: () => bigint
  /** The AEAD that seals (and the version byte that names it). Default chacha20-poly1305. */
  cipher?: SyncCipher
  /** Clock for the header's sent-at field, ms. Default Date.now. */
  now?: () => number
  /** Size limit for snapshot-chunk packets (other ops: 1400). Default and ceiling 65507. */
  maxPacketBytes?: number
  /** Source of the AEAD nonce. Default: crypto.randomFillSync into the packet; tests inject fixed bytes. */
  randomBytes?: (size: number) => Buffer
}

export interface DecodeContext {
  keyRing: FarmKeyRing
  ownNodeId: Buffer
  replay: ReplayGuard
  /** ms since the epoch */
  now: () => number
  sessionLifetimeSeconds: number
  maxSkewSeconds: number
  /** Size limit for snapshot-chunk packets, clamped to 1400..65507 (other ops: 1400). */
  maxPacketBytes: number
  /**
   * New, Del and SnapshotRequest dated at or before this (ms) are refused as `before_start`:
   * this node's start minus the skew, or a floor carried over from before a restart
   * (replay-state.ts). Default: none.
   */
  notBeforeMs?: number
  /** The same for challenges and chunks (answers to this process's own random request ids). */
  repliesNotBeforeMs?: number
  /** Called for an authenticated packet about to be accepted, before the replay window records it. */
  beforeAccept?: (sentAtMs: number) => void
  /**
   * For an authenticated packet with our node id: whether this process sent it (its multicast
   * echo) or another node started with the same --node-id did. Default: ours.
   */
  ownPacket?: (sequence: bigint, sentAtMs: number) => boolean
}

export type DecodeResult =
  /** `sender`: the sender's node id in hex (what the replay window and the peer list key on). */
  | { ok: true; message: SyncMessage; sender: string; sequence: bigint; keyId: number; sentAtMs: number }
  /** `twin`: an authenticated packet with our node id that `ownPacket` says we did not send. */
  | ({ ok: false; reason: RejectReason; twin?: true } & RefusalDetail)

/**
 * What the sync's log needs to say why a peer is refused: the key id of an `unknown_key`
 * packet, how far a `future`/`stale` packet's date is from our clock, and the sender and
 * sequence of a `replay` (authenticated by then, so a copy can be told from a replay).
 */
export interface RefusalDetail { keyId?: number; offsetMs?: number; sender?: string; sequence?: bigint }

// --- helpers ------------------------------------------------------------------------------

/**
 * A per-process sequence source: starts at ms * 1000 (so a restarted node with a configured id
 * starts above where it stopped, unless it averaged more than 10^6 packets/s or its clock went
 * back) and increases by one per packet.
 */
export function createSequenceCounter (startMs: number = Date.now()): () => bigint {
  let next = BigInt(Math.floor(startMs)) * 1000n
  return () => {
    if (next > MAX_U64) throw new RangeError('sync sequence counter exhausted')
    return next++
  }
}

export function packetLimitV2 (op: SyncOp, maxPacketBytes: number = MAX_UDP_PAYLOAD_BYTES): number {
  if (op !== 'snapshot-chunk') return MAX_SMALL_PACKET_BYTES
  const limit = Number.isFinite(maxPacketBytes) ? Math.floor(maxPacketBytes) : MAX_UDP_PAYLOAD_BYTES
  return Math.min(MAX_UDP_PAYLOAD_BYTES, Math.max(MAX_SMALL_PACKET_BYTES, limit))
}

/** Bytes one entry takes in a snapshot-chunk body. */
export function snapshotEntryBytes (entry: SnapshotEntry): number {
  return 1 + entry.sessionId.length + 4 + 2 + entry.session.length
}

function bodyLength (msg: SyncMessage): number {
  switch (msg.op) {
    case 'new': return snapshotEntryBytes(msg)
    case 'del': return 1 + msg.sessionId.length
    case 'snapshot-request': return SNAPSHOT_REQUEST_BODY_BYTES
    case 'snapshot-challenge': return SNAPSHOT_REQUEST_BODY_BYTES
    case 'snapshot-chunk': return 4 + 1 + 2 + msg.sessions.reduce((sum, e) => sum + snapshotEntryBytes(e), 0)
  }
}

export function encodedLengthV2 (msg: SyncMessage): number { return V2_OVERHEAD_BYTES + bodyLength(msg) }

// --- encode -------------------------------------------------------------------------------

function checkSessionId (id: Buffer, what: string): void {
  if (id.length < 1 || id.length > MAX_SESSION_ID_BYTES) {
    throw new RangeError(`${what}: session id must be 1 to ${MAX_SESSION_ID_BYTES} bytes, got ${id.length}`)
  }
}

function checkU32 (value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_U32) {
    throw new RangeError(`${what} must be an integer from 0 to ${MAX_U32}, got ${value}`)
  }
}

function writeEntry (out: Buffer, offset: number, entry: SnapshotEntry, what: string): number {
  checkSessionId(entry.sessionId, what)
  checkU32(entry.createdAt, `${what}: createdAt (unix seconds)`)
  if (entry.session.length < 1 || entry.session.length > 0xffff) {
    throw new RangeError(`${what}: DER session must be 1 to 65535 bytes, got ${entry.session.length}`)
  }
  offset = out.writeUInt8(entry.sessionId.length, offset)
  offset += entry.sessionId.copy(out, offset)
  offset = out.writeUInt32BE(entry.createdAt, offset)
  offset = out.writeUInt16BE(entry.session.length, offset)
  offset += entry.session.copy(out, offset)
  return offset
}

function encodeBody (msg: SyncMessage): Buffer {
  const body = Buffer.alloc(bodyLength(msg))
  switch (msg.op) {
    case 'new':
      writeEntry(body, 0, msg, 'sync new')
      break
    case 'del':
      checkSessionId(msg.sessionId, 'sync del')
      body.writeUInt8(msg.sessionId.length, 0)
      msg.sessionId.copy(body, 1)
      break
    case 'snapshot-request':
    case 'snapshot-challenge': {
      checkU32(msg.requestId, `sync ${msg.op}: requestId`)
      body.writeUInt32BE(msg.requestId, 0)
      if (msg.cookie === undefined) break // zeros: a first request
      checkU32(msg.cookie.issuedAt, `sync ${msg.op}: cookie issuedAt`)
      if (msg.cookie.issuedAt === 0 || msg.cookie.mac.length !== COOKIE_MAC_BYTES) {
        throw new RangeError(`sync ${msg.op}: a cookie has a non-zero issuedAt and a ${COOKIE_MAC_BYTES}-byte MAC`)
      }
      body.writeUInt32BE(msg.cookie.issuedAt, 4)
      msg.cookie.mac.copy(body, 8)
      break
    }
    case 'snapshot-chunk': {
      checkU32(msg.requestId, 'sync snapshot-chunk: requestId')
      if (msg.sessions.length > 0xffff) throw new RangeError(`sync snapshot-chunk: at most 65535 sessions, got ${msg.sessions.length}`)
      let offset = body.writeUInt32BE(msg.requestId, 0)
      offset = body.writeUInt8(msg.last ? CHUNK_FLAG_LAST : 0, offset)
      offset = body.writeUInt16BE(msg.sessions.length, offset)
      for (const entry of msg.sessions) offset = writeEntry(body, offset, entry, 'sync snapshot-chunk entry')
      break
    }
  }
  return body
}

/**
 * Random nonces are taken from a pool of CSPRNG output filled 4 KiB at a time: a call into
 * randomFillSync per packet cost more than the AES-GCM seal itself. Consecutive slices of the
 * generator's output are as random as separate calls; each is used once.
 */
const NONCE_POOL_BYTES = 4092 // a multiple of 12
const noncePool = Buffer.alloc(NONCE_POOL_BYTES)
let noncePoolOffset = NONCE_POOL_BYTES

function takeRandomNonce (out: Buffer, at: number): void {
  if (noncePoolOffset + V2_NONCE_BYTES > NONCE_POOL_BYTES) {
    randomFillSync(noncePool)
    noncePoolOffset = 0
  }
  noncePool.copy(out, at, noncePoolOffset, noncePoolOffset + V2_NONCE_BYTES)
  noncePoolOffset += V2_NONCE_BYTES
}

/** Seal an arbitrary body under the current key. encodeV2 uses it; tests use it for bad bodies. */
export function sealV2 (op: number, body: Buffer, ctx: EncodeContext): Buffer {
  if (!Number.isInteger(op) || op < 0 || op > 255) throw new RangeError(`sync op must be a byte, got ${op}`)
  if (ctx.nodeId.length !== NODE_ID_BYTES) throw new RangeError(`sync node id must be ${NODE_ID_BYTES} bytes, got ${ctx.nodeId.length}`)
  const total = V2_OVERHEAD_BYTES + body.length
  if (total > MAX_UDP_PAYLOAD_BYTES) throw new RangeError(`sync packet of ${total} bytes exceeds ${MAX_UDP_PAYLOAD_BYTES}`)
  const sequence = ctx.nextSequence()
  if (typeof sequence !== 'bigint' || sequence < 0n || sequence > MAX_U64) {
    throw new RangeError(`sync sequence must be a bigint from 0 to 2^64-1, got ${String(sequence)}`)
  }
  const sentAtMs = Math.floor((ctx.now ?? Date.now)())
  if (!Number.isSafeInteger(sentAtMs) || sentAtMs < 0) throw new RangeError(`sync clock gave an invalid time: ${sentAtMs}`)
  const nonce = ctx.randomBytes?.(V2_NONCE_BYTES)
  if (nonce !== undefined && nonce.length !== V2_NONCE_BYTES) throw new RangeError(`sync nonce must be ${V2_NONCE_BYTES} bytes`)
  const key = ctx.keyRing.current()
  const cipher = ctx.cipher ?? DEFAULT_SYNC_CIPHER

  // Every byte is written below. Up to 100k packets a second pass here: no copy, no concat.
  const packet = Buffer.allocUnsafe(total)
  V2_MAGIC.copy(packet, 0)
  packet.writeUInt8(VERSION_OF_CIPHER[cipher], OFF_VERSION)
  packet.writeUInt8(key.id, OFF_KEY_ID)
  packet.writeUInt8(op, OFF_OP)
  ctx.nodeId.copy(packet, OFF_NODE_ID)
  packet.writeBigUInt64BE(sequence, OFF_SEQUENCE)
  packet.writeBigUInt64BE(BigInt(sentAtMs), OFF_SENT_AT)
  packet.writeUInt16BE(body.length, OFF_BODY_LEN)
  if (nonce !== undefined) nonce.copy(packet, OFF_NONCE)
  else takeRandomNonce(packet, OFF_NONCE)

  sealInPlace(cipher, key, packet, V2_HEADER_BYTES, body)
  return packet
}

/** An update that does not fit in one packet of its format (a session with a large client certificate): never sent. */
export class PacketTooBigError extends RangeError {
  constructor (readonly op: string, readonly bytes: number, readonly limit: number, format = 'sync') {
    super(`${format} ${op} packet would be ${bytes} bytes, over the ${limit}-byte limit`)
    this.name = 'PacketTooBigError'
  }
}

export function encodeV2 (msg: SyncMessage, ctx: EncodeContext): Buffer {
  const op = OP_CODES[msg.op]
  if (op === undefined) throw new Error(`sync: unknown operation ${String((msg as { op: unknown }).op)}`)
  const size = encodedLengthV2(msg)
  const limit = packetLimitV2(msg.op, ctx.maxPacketBytes)
  if (size > limit) throw new PacketTooBigError(msg.op, size, limit)
  return sealV2(op, encodeBody(msg), ctx)
}

// --- decode -------------------------------------------------------------------------------

/** Bounds-checked reader over an authenticated body; any overrun makes the body 'bad_body'. */
class BodyReader {
  offset = 0
  failed = false
  constructor (private readonly buf: Buffer) {}

  private take (n: number): number | undefined {
    if (this.failed || this.offset + n > this.buf.length) { this.failed = true; return undefined }
    const at = this.offset
    this.offset += n
    return at
  }

  u8 (): number { const at = this.take(1); return at === undefined ? 0 : this.buf.readUInt8(at) }
  u16 (): number { const at = this.take(2); return at === undefined ? 0 : this.buf.readUInt16BE(at) }
  u32 (): number { const at = this.take(4); return at === undefined ? 0 : this.buf.readUInt32BE(at) }
  bytes (n: number): Buffer {
    const at = this.take(n)
    // Views of the body, which is the decryption's own output, never the datagram buffer the
    // caller may reuse: no copy needed.
    return at === undefined ? Buffer.alloc(0) : this.buf.subarray(at, at + n)
  }

  get done (): boolean { return !this.failed && this.offset === this.buf.length }
}

function readSessionId (r: BodyReader): Buffer | undefined {
  const len = r.u8()
  if (len < 1 || len > MAX_SESSION_ID_BYTES) return undefined
  return r.bytes(len)
}

function readEntry (r: BodyReader): SnapshotEntry | undefined {
  const sessionId = readSessionId(r)
  if (sessionId === undefined) return undefined
  const createdAt = r.u32()
  const derLen = r.u16()
  if (derLen < 1) return undefined
  const session = r.bytes(derLen)
  return r.failed ? undefined : { sessionId, session, createdAt }
}

type BodyResult = { ok: true; message: SyncMessage } | { ok: false; reason: RejectReason }

function createdAtReason (createdAt: number, ctx: DecodeContext, nowMs: number): RejectReason | undefined {
  const nowS = nowMs / 1000
  if (createdAt > nowS + ctx.maxSkewSeconds) return 'future'
  if (createdAt < nowS - ctx.sessionLifetimeSeconds) return 'stale'
  return undefined
}

const BAD_BODY: BodyResult = { ok: false, reason: 'bad_body' }

/**
 * A New's body (id length u8 | id | created u32 | DER length u16 | DER), read in place: the
 * most frequent packet by far, up to 100k a second, so without a reader object.
 */
function decodeNewBody (body: Buffer, ctx: DecodeContext, nowMs: number): BodyResult {
  const idLen = body.length > 0 ? body[0] as number : 0
  if (idLen < 1 || idLen > MAX_SESSION_ID_BYTES || body.length < 1 + idLen + 6) return BAD_BODY
  const derLen = body.readUInt16BE(1 + idLen + 4)
  if (derLen < 1 || body.length !== 1 + idLen + 6 + derLen) return BAD_BODY
  const createdAt = body.readUInt32BE(1 + idLen)
  const reason = createdAtReason(createdAt, ctx, nowMs)
  if (reason !== undefined) return { ok: false, reason }
  return { ok: true, message: { op: 'new', sessionId: body.subarray(1, 1 + idLen), session: body.subarray(1 + idLen + 6), createdAt } }
}

function decodeBody (op: SyncOp, body: Buffer, ctx: DecodeContext, nowMs: number): BodyResult {
  if (op === 'new') return decodeNewBody(body, ctx, nowMs)
  const r = new BodyReader(body)
  const bad = BAD_BODY
  switch (op) {
    case 'del': {
      const sessionId = readSessionId(r)
      if (sessionId === undefined || !r.done) return bad
      return { ok: true, message: { op: 'del', sessionId } }
    }
    case 'snapshot-request':
    case 'snapshot-challenge': {
      const requestId = r.u32()
      const issuedAt = r.u32()
      const mac = r.bytes(COOKIE_MAC_BYTES)
      if (!r.done) return bad
      if (issuedAt === 0) {
        // No cookie: only a first request may say so, and then its MAC bytes are zeros.
        if (op === 'snapshot-challenge' || mac.some((b) => b !== 0)) return bad
        return { ok: true, message: { op, requestId } }
      }
      return { ok: true, message: { op, requestId, cookie: { issuedAt, mac } } }
    }
    case 'snapshot-chunk': {
      const requestId = r.u32()
      const flags = r.u8()
      const count = r.u16()
      if (r.failed || (flags & ~CHUNK_FLAG_LAST) !== 0) return bad
      const sessions: SnapshotEntry[] = []
      let future = false
      for (let i = 0; i < count; i++) {
        const entry = readEntry(r)
        if (entry === undefined) return bad
        const reason = createdAtReason(entry.createdAt, ctx, nowMs)
        if (reason === 'future') future = true
        else if (reason === undefined) sessions.push(entry)
        // stale entries are skipped: the sender's snapshot raced with their expiry
      }
      if (!r.done) return bad
      if (future) return { ok: false, reason: 'future' }
      return { ok: true, message: { op: 'snapshot-chunk', requestId, sessions, last: (flags & CHUNK_FLAG_LAST) !== 0 } }
    }
  }
}

function reject (reason: RejectReason): DecodeResult { return { ok: false, reason } }

/**
 * `fromOwnSocket`: the datagram's source is this node's own sync socket (one of this host's
 * addresses, our port): where our multicast echo comes from. Such a packet with our node id and
 * a sequence we sent is refused as `own` before the AEAD open, the open being most of what a
 * refused packet costs. Its header is not authenticated yet, so this can only drop: a forgery
 * (never cached either way) or a packet of a node with our --node-id (a twin, refused as `own`
 * after the open too). Anything else with our id is opened first: `bad_tag`, or `own` after.
 */
export function decodeV2 (packet: Buffer, ctx: DecodeContext, fromOwnSocket = false): DecodeResult {
  const length = packet.length
  if (length > packetLimitV2('snapshot-chunk', ctx.maxPacketBytes)) return reject('oversized')
  if (length === 0) return reject('truncated')
  for (let i = 0; i < Math.min(length, V2_MAGIC.length); i++) {
    if (packet[i] !== V2_MAGIC[i]) return reject('bad_magic')
  }
  if (length <= OFF_VERSION) return reject('truncated')
  const cipher = cipherOfVersion(packet[OFF_VERSION] as number)
  if (cipher === undefined) return reject('bad_version')
  if (length < V2_OVERHEAD_BYTES) return reject('truncated')

  const op = OP_NAMES.get(packet.readUInt8(OFF_OP))
  if (op === undefined) return reject('bad_op')
  if (length > packetLimitV2(op, ctx.maxPacketBytes)) return reject('oversized')
  const bodyLen = packet.readUInt16BE(OFF_BODY_LEN)
  const expected = V2_OVERHEAD_BYTES + bodyLen
  if (length < expected) return reject('truncated')
  if (length > expected) return reject('bad_length')

  const keyId = packet.readUInt8(OFF_KEY_ID)
  const key = ctx.keyRing.byId(keyId)
  if (key === undefined) return { ok: false, reason: 'unknown_key', keyId }

  const ownId = isOwnNodeId(packet, ctx.ownNodeId)
  if (ownId && fromOwnSocket && sentByUs(packet, ctx)) return reject('own')
  const body = openPacket(cipher, key, packet, V2_HEADER_BYTES, bodyLen)
  if (body === undefined) return reject('bad_tag')
  // After the tag: our node id is public (a hash of our name), so a forged packet carrying it
  // from elsewhere must count as the forgery it is, not as our own harmless echo.
  if (ownId) return sentByUs(packet, ctx) ? reject('own') : { ok: false, reason: 'own', twin: true }

  // Authenticated from here on.
  const nowMs = ctx.now()
  const sequence = packet.readBigUInt64BE(OFF_SEQUENCE)
  const sentAtMs = Number(packet.readBigUInt64BE(OFF_SENT_AT))
  if (sentAtMs > nowMs + ctx.maxSkewSeconds * 1000) return { ok: false, reason: 'future', offsetMs: sentAtMs - nowMs }
  if (sentAtMs < nowMs - ctx.sessionLifetimeSeconds * 1000) return { ok: false, reason: 'stale', offsetMs: sentAtMs - nowMs }
  const notBefore = REPLY_OPS.has(op) ? ctx.repliesNotBeforeMs : ctx.notBeforeMs
  if (notBefore !== undefined && sentAtMs <= notBefore) return reject('before_start')
  const senderHex = senderHexOf(packet)
  if (!ctx.replay.check(senderHex, sequence, sentAtMs)) return { ok: false, reason: 'replay', sender: senderHex, sequence }

  const decoded = decodeBody(op, body, ctx, nowMs)
  if (!decoded.ok) return decoded
  ctx.beforeAccept?.(sentAtMs)
  ctx.replay.commit(senderHex, sequence, sentAtMs)
  return { ok: true, message: decoded.message, sender: senderHex, sequence, keyId, sentAtMs }
}

/**
 * The sender's node id in hex. The packets of a batch, and a busy peer's packets one after
 * another, come from one sender: the last id's string is kept and reused while the bytes match.
 */
let lastSenderBytes = Buffer.alloc(NODE_ID_BYTES)
let lastSenderHex = lastSenderBytes.toString('hex')
function senderHexOf (packet: Buffer): string {
  for (let i = 0; i < NODE_ID_BYTES; i++) {
    if (packet[OFF_NODE_ID + i] !== lastSenderBytes[i]) {
      lastSenderBytes = Buffer.from(packet.subarray(OFF_NODE_ID, OFF_NODE_ID + NODE_ID_BYTES))
      lastSenderHex = lastSenderBytes.toString('hex')
      break
    }
  }
  return lastSenderHex
}

/** Whether a packet with our node id is one this process sent (ownPacket), from its header. */
function sentByUs (packet: Buffer, ctx: DecodeContext): boolean {
  return ctx.ownPacket?.(packet.readBigUInt64BE(OFF_SEQUENCE), Number(packet.readBigUInt64BE(OFF_SENT_AT))) ?? true
}

function isOwnNodeId (packet: Buffer, own: Buffer): boolean {
  for (let i = 0; i < NODE_ID_BYTES; i++) if (packet[OFF_NODE_ID + i] !== own[i]) return false
  return own.length === NODE_ID_BYTES
}

// --- batches ------------------------------------------------------------------------------

/**
 * A batch datagram carries several complete, individually sealed New/Del packets, so each one
 * is authenticated, replay-checked and counted on its own: a forged or replayed packet among
 * them is refused alone. The frame around them is not authenticated and says nothing that is
 * trusted (docs/wire-protocol.md):
 *
 *   magic "TF" (2) | version 2 (1) | 0 (1) | op 5 (1) | count (1) | count × { length u16 | packet }
 *
 * A lone update is sent as a plain packet, which every v2 node reads; a node that predates
 * batches counts a batch as `bad_op`.
 */
export const OP_BATCH = 5
export const V2_BATCH_HEADER_BYTES = 6
/** Each packet in a batch is preceded by its length. */
export const V2_BATCH_RECORD_OVERHEAD = 2
export const MAX_BATCH_PACKETS = 255
const BATCHABLE_OPS: ReadonlySet<number> = new Set([OP_CODES.new, OP_CODES.del])

/** Bytes a batch of packets of these sizes takes. */
export function batchBytesV2 (packetBytes: readonly number[]): number {
  return packetBytes.reduce((sum, n) => sum + V2_BATCH_RECORD_OVERHEAD + n, V2_BATCH_HEADER_BYTES)
}

/** Frame sealed New/Del packets into one batch datagram; throws when it would not fit 1400 bytes. */
export function frameBatchV2 (packets: readonly Buffer[]): Buffer {
  if (packets.length < 1 || packets.length > MAX_BATCH_PACKETS) throw new RangeError(`a sync batch holds 1 to ${MAX_BATCH_PACKETS} packets, got ${packets.length}`)
  const total = batchBytesV2(packets.map((p) => p.length))
  if (total > MAX_SMALL_PACKET_BYTES) throw new RangeError(`sync batch of ${total} bytes exceeds ${MAX_SMALL_PACKET_BYTES}`)
  const out = Buffer.allocUnsafe(total)
  V2_MAGIC.copy(out, 0)
  out[OFF_VERSION] = V2_VERSION
  out[OFF_KEY_ID] = 0
  out[OFF_OP] = OP_BATCH
  out[OFF_OP + 1] = packets.length
  let offset = V2_BATCH_HEADER_BYTES
  for (const packet of packets) {
    if (packet.length < V2_OVERHEAD_BYTES || !BATCHABLE_OPS.has(packet[OFF_OP] as number)) throw new RangeError('only sealed New and Del packets go in a sync batch')
    offset = out.writeUInt16BE(packet.length, offset)
    offset += packet.copy(out, offset)
  }
  return out
}

export type SplitResult = { ok: true; packets: Buffer[]; batch: boolean } | { ok: false; reason: RejectReason }

/**
 * The packets of a datagram: itself when it is a plain packet (decodeV2 judges it), or the
 * packets of a batch. A batch whose frame is broken is refused whole: `oversized` over 1400
 * bytes, `truncated` when a length runs past the end, `bad_length` for a count of 0 or bytes
 * after the last packet. Each packet is then judged alone (batchedPacketOk, decodeV2).
 */
export function splitDatagramV2 (datagram: Buffer): SplitResult {
  if (datagram.length <= OFF_OP || datagram[OFF_OP] !== OP_BATCH || datagram[0] !== V2_MAGIC[0] || datagram[1] !== V2_MAGIC[1] || datagram[OFF_VERSION] !== V2_VERSION) {
    return { ok: true, packets: [datagram], batch: false }
  }
  if (datagram.length > MAX_SMALL_PACKET_BYTES) return { ok: false, reason: 'oversized' }
  if (datagram.length < V2_BATCH_HEADER_BYTES) return { ok: false, reason: 'truncated' }
  const count = datagram[OFF_OP + 1] as number
  if (count === 0) return { ok: false, reason: 'bad_length' }
  const packets: Buffer[] = []
  let offset = V2_BATCH_HEADER_BYTES
  for (let i = 0; i < count; i++) {
    if (offset + V2_BATCH_RECORD_OVERHEAD > datagram.length) return { ok: false, reason: 'truncated' }
    const length = datagram.readUInt16BE(offset)
    offset += V2_BATCH_RECORD_OVERHEAD
    if (offset + length > datagram.length) return { ok: false, reason: 'truncated' }
    packets.push(datagram.subarray(offset, offset + length))
    offset += length
  }
  if (offset !== datagram.length) return { ok: false, reason: 'bad_length' }
  return { ok: true, packets, batch: true }
}

/** Only New and Del travel in batches; any other packet in one is refused (`bad_op`) alone. */
export function batchedPacketOk (packet: Buffer): boolean {
  return packet.length > OFF_OP && BATCHABLE_OPS.has(packet[OFF_OP] as number)
}
