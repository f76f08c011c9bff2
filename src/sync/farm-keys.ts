/**
 * Keys derived from the farm secret (the file every node of a farm shares).
 *
 *   interface FarmKey { id: number /* 0-255, sent in every v2 packet *\/; secret: Buffer /* >= 32 bytes *\/ }
 *   interface DerivedKey extends AeadKey { id; aesKey /* 32 bytes, AES-256-GCM *\/;
 *                          chachaKey /* 32 bytes, ChaCha20-Poly1305 *\/; fingerprint /* 16 hex chars *\/;
 *                          derive(purpose, length): Buffer }
 *   class FarmKeyRing {
 *     constructor (keys: FarmKey[], currentId?: number)   // currentId defaults to keys[0].id
 *     current (): DerivedKey                               // the only key used to send
 *     byId (id: number): DerivedKey | undefined            // any key accepted on receive
 *     ids (): number[]
 *   }
 *   deriveKey (key: FarmKey, purpose: string, length: number): Buffer
 *   FARM_KEY_LABELS   the HKDF `info` labels in use (one per purpose)
 *
 * Derivation: HKDF-SHA256(ikm = secret, salt = "tlsfleet farm secret", info = purpose label).
 * Each purpose has its own label, so the sync AEAD keys (one per cipher), the key fingerprint and
 * the TLS ticket keys are independent even though they come from one secret. Rotation: put the new key
 * in every node's ring first (both accepted), then make it current everywhere, then drop the old.
 * Loading the secret file and checking its permissions is the caller's job; this module only
 * checks what it is given and throws a clear Error on bad input (configuration, not network).
 */
import { createSecretKey, hkdfSync, type KeyObject } from 'node:crypto'
import type { AeadKey } from './sync-aead.js'

export interface FarmKey { id: number; secret: Buffer }

export interface DerivedKey extends AeadKey {
  readonly id: number
  /** 32-byte AES-256-GCM key for sync v2 packets of version 2. */
  readonly aesKey: Buffer
  /**
   * The same key as a KeyObject, which is what seal and open pass to node:crypto: given a Buffer,
   * createCipheriv first asks whether it is a KeyObject or a CryptoKey, and each "no" is a thrown
   * and caught TypeError inside Node (Node 24), ~40 µs of a ~50 µs packet on a busy VM.
   */
  readonly aesKeyObject: KeyObject
  /** 32-byte ChaCha20-Poly1305 key for sync v2 packets of version 3 (libsodium takes a Buffer). */
  readonly chachaKey: Buffer
  readonly chachaKeyObject: KeyObject
  /** Non-secret 8-byte id of the secret (hex), for logs: equal on nodes that share the secret. */
  readonly fingerprint: string
  /** Derive another key from the same secret under a distinct purpose label. */
  derive (purpose: string, length: number): Buffer
}

export const MIN_SECRET_BYTES = 32
const HKDF_SALT = Buffer.from('tlsfleet farm secret')

export const FARM_KEY_LABELS = {
  syncAead: 'tlsfleet sync v2 aead', // AES-256-GCM (the first cipher; the label predates the second)
  syncChaCha: 'tlsfleet sync v2 chacha20-poly1305',
  fingerprint: 'tlsfleet key fingerprint'
} as const

export function deriveKey (key: FarmKey, purpose: string, length: number): Buffer {
  checkFarmKey(key)
  if (purpose.length === 0) throw new Error('deriveKey: the purpose label must not be empty')
  // HKDF-SHA256 output is capped at 255 * 32 bytes.
  if (!Number.isInteger(length) || length < 1 || length > 255 * 32) {
    throw new Error(`deriveKey: length must be an integer from 1 to 8160, got ${length}`)
  }
  return Buffer.from(hkdfSync('sha256', key.secret, HKDF_SALT, Buffer.from(purpose, 'utf8'), length))
}

function checkFarmKey (key: FarmKey): void {
  if (!Number.isInteger(key.id) || key.id < 0 || key.id > 255) {
    throw new Error(`farm key id must be an integer from 0 to 255, got ${String(key.id)}`)
  }
  if (!Buffer.isBuffer(key.secret) || key.secret.length < MIN_SECRET_BYTES) {
    const got = Buffer.isBuffer(key.secret) ? `${key.secret.length} bytes` : typeof key.secret
    throw new Error(`farm key ${key.id}: the secret must be at least ${MIN_SECRET_BYTES} bytes, got ${got}`)
  }
}

function derive (key: FarmKey): DerivedKey {
  // Own copy of the secret: later changes to the caller's Buffer must not change derived keys.
  const own: FarmKey = { id: key.id, secret: Buffer.from(key.secret) }
  const aesKey = deriveKey(own, FARM_KEY_LABELS.syncAead, 32)
  const chachaKey = deriveKey(own, FARM_KEY_LABELS.syncChaCha, 32)
  return Object.freeze({
    id: key.id,
    aesKey,
    aesKeyObject: createSecretKey(aesKey),
    chachaKey,
    chachaKeyObject: createSecretKey(chachaKey),
    fingerprint: deriveKey(own, FARM_KEY_LABELS.fingerprint, 8).toString('hex'),
    derive: (purpose: string, length: number) => deriveKey(own, purpose, length)
  })
}

export class FarmKeyRing {
  private readonly keys = new Map<number, DerivedKey>()
  private readonly currentKey: DerivedKey

  constructor (keys: FarmKey[], currentId?: number) {
    if (keys.length === 0) throw new Error('farm key ring: at least one key is needed')
    for (const key of keys) {
      checkFarmKey(key)
      if (this.keys.has(key.id)) throw new Error(`farm key ring: key id ${key.id} appears twice`)
      this.keys.set(key.id, derive(key))
    }
    const wanted = currentId ?? (keys[0] as FarmKey).id
    const current = this.keys.get(wanted)
    if (current === undefined) {
      throw new Error(`farm key ring: current key id ${wanted} is not one of ${[...this.keys.keys()].join(', ')}`)
    }
    this.currentKey = current
  }

  current (): DerivedKey { return this.currentKey }

  byId (id: number): DerivedKey | undefined { return this.keys.get(id) }

  ids (): number[] { return [...this.keys.keys()] }
}
