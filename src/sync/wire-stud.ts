/**
 * The stud/hitch shared-cache datagram, for farms that mix tlsfleet with hitch (or stud).
 * SIGNED BUT NOT ENCRYPTED: the DER session (with its master secret) crosses the network in
 * clear, and there is no replay protection. Prefer v2 (wire-v2.ts) whenever all nodes are ours.
 *
 *   [session ID, 32 bytes, zero-padded][DER SSL_SESSION, 1..512][creation time u32 BE, unix s]
 *   [HMAC-SHA1 over everything before it, 20 bytes]          => 57..568 bytes
 *
 *   studHmacKeyFromPrivateKeyPem (pem: string): Buffer   SHA-1 of the PKCS#1 DER RSA key (20 B);
 *                                                        throws for non-RSA keys
 *   encodeStud (msg: StudNewMessage, hmacKey: Buffer): Buffer      throws on bad input
 *   decodeStud (packet, { hmacKey, now, sessionTimeoutSeconds, maxSkewSeconds? }): StudDecodeResult
 *   type StudDecodeResult = { ok: true; message: { op: 'new', sessionId, session, createdAt } }
 *                         | { ok: false; reason: RejectReason }      never throws
 *
 * Checked against hitch src/hitch.c (handle_shcupd, shcupd_session_new, compute_secret) and
 * src/shctx.c (shctx_new_cb, shctx_sess_add):
 * - The sender pads the session ID with zeros to 32 bytes; the receiver keys its cache by those
 *   32 bytes (lookups pad the same way), so the true ID length is never recovered. We return the
 *   32-byte field as the session ID (OpenSSL server-generated IDs are 32 bytes anyway).
 * - The DER length is implied: datagram length - 32 - 4 - 20. hitch accepts 1..512 bytes of DER
 *   (SHSESS_MAX_DATA_LEN) and receives into a 612-byte buffer.
 * - hitch verifies the HMAC first, then asserts now >= time (a future date aborts hitch!), then
 *   drops the update when now - time >= session timeout; senders must never date the future
 *   (now in whole seconds). It then stores the session with its own receive time, not the
 *   packet's; we return the packet's time and let the caller decide.
 * - Only New exists (no Del); session tickets are turned off when the sync is on.
 * - compute_secret runs only for RSA keys: with an EC key hitch keeps an all-zero 20-byte HMAC
 *   key (anyone can forge updates). We refuse non-RSA keys instead.
 * Our decoder checks the length first ('bad_length'), then the HMAC ('bad_hmac', constant time),
 * then hitch's time rule ('stale' / 'future'); maxSkewSeconds, when given, also refuses packets
 * dated more than that in the future (hitch aborts on any future date).
 */
import { createHash, createHmac, createPrivateKey, timingSafeEqual, type KeyObject } from 'node:crypto'
import type { RejectReason } from './reject-reasons.js'

export const STUD_SESSION_ID_BYTES = 32
export const STUD_MAX_DER_BYTES = 512
export const STUD_TIME_BYTES = 4
export const STUD_HMAC_BYTES = 20
export const STUD_MIN_PACKET_BYTES = STUD_SESSION_ID_BYTES + 1 + STUD_TIME_BYTES + STUD_HMAC_BYTES // 57
export const STUD_MAX_PACKET_BYTES = STUD_SESSION_ID_BYTES + STUD_MAX_DER_BYTES + STUD_TIME_BYTES + STUD_HMAC_BYTES // 568

export interface StudNewMessage { op: 'new'; sessionId: Buffer; session: Buffer; createdAt: number }

export interface StudDecodeContext {
  hmacKey: Buffer | KeyObject
  /** ms since the epoch */
  now: () => number
  sessionTimeoutSeconds: number
  /** Optional, stricter than hitch: refuse packets dated more than this in the future. */
  maxSkewSeconds?: number
}

export type StudDecodeResult =
  | { ok: true; message: StudNewMessage }
  | { ok: false; reason: RejectReason }

export function studHmacKeyFromPrivateKeyPem (pem: string): Buffer {
  let key
  try {
    key = createPrivateKey(pem)
  } catch (err) {
    throw new Error(`stud sync: cannot read the private key: ${err instanceof Error ? err.message : String(err)}`)
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new Error(`stud sync format needs an RSA private key (its HMAC key is the SHA-1 of the PKCS#1 RSA key); this key is ${key.asymmetricKeyType ?? 'unknown'} — hitch would sign with an all-zero key. Use an RSA certificate or the v2 format`)
  }
  const der = key.export({ type: 'pkcs1', format: 'der' })
  return createHash('sha1').update(der).digest()
}

/** A KeyObject is cheaper per packet than a Buffer (see DerivedKey.aesKeyObject in farm-keys.ts). */
type HmacKey = Buffer | KeyObject

function hmac (key: HmacKey, data: Buffer): Buffer {
  return createHmac('sha1', key).update(data).digest()
}

export function encodeStud (msg: StudNewMessage, hmacKey: HmacKey): Buffer {
  if (msg.sessionId.length < 1 || msg.sessionId.length > STUD_SESSION_ID_BYTES) {
    throw new RangeError(`stud sync: session id must be 1 to ${STUD_SESSION_ID_BYTES} bytes, got ${msg.sessionId.length}`)
  }
  if (msg.session.length < 1 || msg.session.length > STUD_MAX_DER_BYTES) {
    throw new RangeError(`stud sync: DER session must be 1 to ${STUD_MAX_DER_BYTES} bytes, got ${msg.session.length}`)
  }
  if (!Number.isInteger(msg.createdAt) || msg.createdAt < 0 || msg.createdAt > 0xffffffff) {
    throw new RangeError(`stud sync: createdAt must be unix seconds fitting 32 bits, got ${msg.createdAt}`)
  }
  const signedLength = STUD_SESSION_ID_BYTES + msg.session.length + STUD_TIME_BYTES
  const packet = Buffer.alloc(signedLength + STUD_HMAC_BYTES) // zero-filled: pads the ID
  msg.sessionId.copy(packet, 0)
  msg.session.copy(packet, STUD_SESSION_ID_BYTES)
  packet.writeUInt32BE(msg.createdAt, STUD_SESSION_ID_BYTES + msg.session.length)
  hmac(hmacKey, packet.subarray(0, signedLength)).copy(packet, signedLength)
  return packet
}

export function decodeStud (packet: Buffer, ctx: StudDecodeContext): StudDecodeResult {
  if (packet.length < STUD_MIN_PACKET_BYTES || packet.length > STUD_MAX_PACKET_BYTES) {
    return { ok: false, reason: 'bad_length' }
  }
  const signedLength = packet.length - STUD_HMAC_BYTES
  const expected = hmac(ctx.hmacKey, packet.subarray(0, signedLength))
  if (!timingSafeEqual(expected, packet.subarray(signedLength))) return { ok: false, reason: 'bad_hmac' }

  const derLength = signedLength - STUD_SESSION_ID_BYTES - STUD_TIME_BYTES
  const createdAt = packet.readUInt32BE(STUD_SESSION_ID_BYTES + derLength)
  const nowS = Math.floor(ctx.now() / 1000) // hitch compares whole seconds
  const age = nowS - createdAt
  if (Math.abs(age) >= ctx.sessionTimeoutSeconds) return { ok: false, reason: age > 0 ? 'stale' : 'future' }
  if (ctx.maxSkewSeconds !== undefined && -age > ctx.maxSkewSeconds) return { ok: false, reason: 'future' }

  return {
    ok: true,
    message: {
      op: 'new',
      sessionId: Buffer.from(packet.subarray(0, STUD_SESSION_ID_BYTES)),
      session: Buffer.from(packet.subarray(STUD_SESSION_ID_BYTES, STUD_SESSION_ID_BYTES + derLength)),
      createdAt
    }
  }
}
