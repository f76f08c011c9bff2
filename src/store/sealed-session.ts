import crypto from 'node:crypto'
import type { SessionEntry } from '../cache/session-store.js'
import type { FarmKeyRing } from '../sync/farm-keys.js'

/**
 * A session as the shared store holds it: sealed with AES-256-GCM under a key derived from the
 * farm secret, with the session ID as associated data. The store never sees a master secret in
 * clear, and a value copied under another ID, sealed by another farm or forged does not open.
 *
 *   0      version (1)
 *   1      farm key id (which secret sealed it; a change-over holds two)
 *   2-13   nonce (random)
 *   14-    AES-256-GCM( createdAt u32 BE | session DER ), then the 16-byte tag
 *
 * Associated data: the 2 header bytes and the session ID.
 */
export const SEALED_VERSION = 1
/** HKDF purpose label: the store's key is independent of the sync and ticket keys. */
export const STORE_KEY_LABEL = 'tlsfleet session store aead'
const HEADER_BYTES = 2
const NONCE_BYTES = 12
const TAG_BYTES = 16
const CREATED_AT_BYTES = 4
/** Smallest value that can hold anything: header, nonce, createdAt, one DER byte, tag. */
const MIN_SEALED_BYTES = HEADER_BYTES + NONCE_BYTES + CREATED_AT_BYTES + 1 + TAG_BYTES

/**
 * Why a stored value was refused: not ours (three ways), a key holding another Redis type
 * (`wrong_type`), or ours but dated further ahead than --sync-max-skew (`future`: a clock far
 * ahead, or a value made to outlive the session lifetime).
 */
export const STORE_REJECT_REASONS = ['malformed', 'unknown_key', 'bad_tag', 'wrong_type', 'future'] as const
export type StoreRejectReason = typeof STORE_REJECT_REASONS[number]

export type OpenedSession = { ok: true; entry: SessionEntry } | { ok: false; reason: Exclude<StoreRejectReason, 'wrong_type' | 'future'> }

/** Nonces drawn from the CSPRNG in blocks: one randomBytes call per 512 values, not per seal. */
const NONCE_POOL_BYTES = NONCE_BYTES * 512

/**
 * The store keys, one per farm secret, derived once and held as KeyObjects (a cipher built
 * from a KeyObject skips re-importing the raw key: about 3x cheaper per seal, measured).
 */
export class SessionSealer {
  private keys = new Map<number, crypto.KeyObject>()
  private currentId: number
  private nonces = Buffer.alloc(0)

  constructor (ring: FarmKeyRing) {
    this.currentId = this.setRing(ring)
  }

  /**
   * SIGHUP read other farm secrets: seal under the first from now on, open values sealed under
   * any of them. Values the store holds under a secret no longer listed stop opening
   * (unknown_key: an L2 miss, a full handshake), which is what dropping a secret means.
   */
  setRing (ring: FarmKeyRing): number {
    const keys = new Map<number, crypto.KeyObject>()
    for (const id of ring.ids()) keys.set(id, crypto.createSecretKey((ring.byId(id) as NonNullable<ReturnType<FarmKeyRing['byId']>>).derive(STORE_KEY_LABEL, 32)))
    this.keys = keys
    this.currentId = ring.current().id
    return this.currentId
  }

  seal (id: Buffer, entry: SessionEntry): Buffer {
    const header = Buffer.from([SEALED_VERSION, this.currentId])
    if (this.nonces.length < NONCE_BYTES) this.nonces = crypto.randomBytes(NONCE_POOL_BYTES)
    const nonce = this.nonces.subarray(0, NONCE_BYTES)
    this.nonces = this.nonces.subarray(NONCE_BYTES)
    const cipher = crypto.createCipheriv('aes-256-gcm', this.keys.get(this.currentId) as crypto.KeyObject, nonce)
    cipher.setAAD(Buffer.concat([header, id]))
    const createdAt = Buffer.alloc(CREATED_AT_BYTES)
    createdAt.writeUInt32BE(entry.createdAt)
    const body = Buffer.concat([cipher.update(createdAt), cipher.update(entry.der), cipher.final()])
    return Buffer.concat([header, nonce, body, cipher.getAuthTag()])
  }

  /** Never throws: anything that is not our own sealing of this ID is refused with a reason. */
  open (id: Buffer, value: Buffer): OpenedSession {
    if (value.length < MIN_SEALED_BYTES || value[0] !== SEALED_VERSION) return { ok: false, reason: 'malformed' }
    const key = this.keys.get(value[1] as number)
    if (key === undefined) return { ok: false, reason: 'unknown_key' }
    const nonce = value.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES)
    const body = value.subarray(HEADER_BYTES + NONCE_BYTES, value.length - TAG_BYTES)
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, nonce)
    decipher.setAAD(Buffer.concat([value.subarray(0, HEADER_BYTES), id]))
    decipher.setAuthTag(value.subarray(value.length - TAG_BYTES))
    let plain: Buffer
    try {
      plain = Buffer.concat([decipher.update(body), decipher.final()])
    } catch {
      return { ok: false, reason: 'bad_tag' }
    }
    return { ok: true, entry: { createdAt: plain.readUInt32BE(0), der: plain.subarray(CREATED_AT_BYTES) } }
  }
}
