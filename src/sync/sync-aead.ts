/**
 * The AEADs that seal sync v2 packets, and the code that runs them.
 *
 *   type SyncCipher = 'chacha20-poly1305' | 'aes-256-gcm'
 *   SYNC_CIPHERS                       both, the default first
 *   VERSION_OF_CIPHER[cipher]          the packet's version byte: 3 ChaCha20-Poly1305, 2 AES-256-GCM
 *   cipherOfVersion (byte)             the reverse; undefined for any other byte
 *   interface AeadKey { aesKeyObject; chachaKey; chachaKeyObject }   (farm-keys.ts DerivedKey has them)
 *   sealInPlace (cipher, key, packet, headerBytes, body)   body encrypted after the header, tag after it
 *   openPacket (cipher, key, packet, headerBytes, bodyLen): Buffer | undefined   undefined: the tag failed
 *   chachaBackend: 'libsodium' | 'node:crypto'              which code runs ChaCha20-Poly1305 here
 *
 * Both AEADs take a 32-byte key and a 12-byte nonce, make a 16-byte tag and authenticate the
 * packet's header as additional data, so the v2 layout is the same for both (docs/wire-protocol.md).
 *
 * Why ChaCha20-Poly1305 is the default: every node:crypto call costs 20-40 k instructions whatever
 * it computes (a Cipher object, its checks, the binding), which made the AES-GCM open more than
 * half of a sync update's cost and capped a node at ~50-70k updates/s. libsodium (sodium-native,
 * prebuilt, no compiler needed) opens a 190-byte ChaCha20-Poly1305 packet in one call for 22 k
 * instructions (a fifth of the time); it has no AES-GCM (docs/benchmarks.md, Farm sync). Where sodium-native does not load (a platform without a
 * prebuild), node:crypto runs the same ChaCha20-Poly1305: same bytes, only slower.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto'
import { createRequire } from 'node:module'

export type SyncCipher = 'chacha20-poly1305' | 'aes-256-gcm'
export const SYNC_CIPHERS = ['chacha20-poly1305', 'aes-256-gcm'] as const satisfies readonly SyncCipher[]

export const VERSION_OF_CIPHER: Readonly<Record<SyncCipher, number>> = {
  'aes-256-gcm': 2,
  'chacha20-poly1305': 3
}

export function cipherOfVersion (version: number): SyncCipher | undefined {
  if (version === 3) return 'chacha20-poly1305'
  if (version === 2) return 'aes-256-gcm'
  return undefined
}

export const AEAD_KEY_BYTES = 32
export const AEAD_NONCE_BYTES = 12
export const AEAD_TAG_BYTES = 16

/** A farm key's sync keys: one per AEAD, derived apart (farm-keys.ts), never one key for both. */
export interface AeadKey {
  /** AES-256-GCM; a KeyObject because node:crypto checks a Buffer key with two thrown TypeErrors. */
  readonly aesKeyObject: KeyObject
  readonly chachaKey: Buffer
  readonly chachaKeyObject: KeyObject
}

/** ChaCha20-Poly1305 (RFC 8439) with a detached tag, written into the caller's buffers. */
interface ChaChaImpl {
  readonly name: 'libsodium' | 'node:crypto'
  seal (out: Buffer, tag: Buffer, plain: Buffer, aad: Buffer, nonce: Buffer, key: AeadKey): void
  /** false when the tag does not verify (`out` then holds no plaintext: untouched, or zeroed by libsodium). */
  open (out: Buffer, cipherText: Buffer, tag: Buffer, aad: Buffer, nonce: Buffer, key: AeadKey): boolean
}

/** The part of sodium-native this module calls (the package ships no types). */
interface SodiumAead {
  crypto_aead_chacha20poly1305_ietf_encrypt_detached (c: Buffer, mac: Buffer, m: Buffer, ad: Buffer, nsec: null, npub: Buffer, k: Buffer): number
  /** Throws "could not verify data" when the tag fails. */
  crypto_aead_chacha20poly1305_ietf_decrypt_detached (m: Buffer, nsec: null, c: Buffer, mac: Buffer, ad: Buffer, npub: Buffer, k: Buffer): void
}

export const nodeChaCha: ChaChaImpl = {
  name: 'node:crypto',
  seal (out, tag, plain, aad, nonce, key) {
    const cipher = createCipheriv('chacha20-poly1305', key.chachaKeyObject, nonce, { authTagLength: AEAD_TAG_BYTES })
    cipher.setAAD(aad, { plaintextLength: plain.length })
    cipher.update(plain).copy(out)
    cipher.final()
    cipher.getAuthTag().copy(tag)
  },
  open (out, cipherText, tag, aad, nonce, key) {
    try {
      const decipher = createDecipheriv('chacha20-poly1305', key.chachaKeyObject, nonce, { authTagLength: AEAD_TAG_BYTES })
      decipher.setAAD(aad, { plaintextLength: cipherText.length })
      decipher.setAuthTag(tag)
      const plain = decipher.update(cipherText)
      decipher.final() // throws when the tag does not verify
      plain.copy(out)
      return true
    } catch {
      return false
    }
  }
}

function sodiumChaCha (sodium: SodiumAead): ChaChaImpl {
  return {
    name: 'libsodium',
    seal (out, tag, plain, aad, nonce, key) {
      sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(out, tag, plain, aad, null, nonce, key.chachaKey)
    },
    open (out, cipherText, tag, aad, nonce, key) {
      try {
        sodium.crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, null, cipherText, tag, aad, nonce, key.chachaKey)
        return true
      } catch {
        return false
      }
    }
  }
}

/** sodium-native when it loads here (a prebuilt addon), node:crypto otherwise. */
function loadSodiumChaCha (): ChaChaImpl | undefined {
  try {
    const sodium = createRequire(import.meta.url)('sodium-native') as SodiumAead
    const impl = sodiumChaCha(sodium)
    // A known-answer round trip against node:crypto: a loaded addon that disagrees is not used.
    if (!agrees(impl, nodeChaCha)) return undefined
    return impl
  } catch {
    return undefined
  }
}

function agrees (a: ChaChaImpl, b: ChaChaImpl): boolean {
  const raw = Buffer.alloc(AEAD_KEY_BYTES, 7)
  const key: AeadKey = { aesKeyObject: createSecretKey(raw), chachaKey: raw, chachaKeyObject: createSecretKey(raw) }
  const plain = Buffer.from('tlsfleet sync aead self-check'), aad = Buffer.from('header'), nonce = Buffer.alloc(AEAD_NONCE_BYTES, 1)
  const out = [Buffer.alloc(plain.length), Buffer.alloc(plain.length)]
  const tags = [Buffer.alloc(AEAD_TAG_BYTES), Buffer.alloc(AEAD_TAG_BYTES)]
  a.seal(out[0] as Buffer, tags[0] as Buffer, plain, aad, nonce, key)
  b.seal(out[1] as Buffer, tags[1] as Buffer, plain, aad, nonce, key)
  const opened = Buffer.alloc(plain.length)
  return (out[0] as Buffer).equals(out[1] as Buffer) && (tags[0] as Buffer).equals(tags[1] as Buffer) &&
    a.open(opened, out[1] as Buffer, tags[1] as Buffer, aad, nonce, key) && opened.equals(plain)
}

const chacha: ChaChaImpl = loadSodiumChaCha() ?? nodeChaCha
export const chachaBackend: ChaChaImpl['name'] = chacha.name
/** Tests only: the libsodium implementation when it loads here, to compare against node:crypto. */
export const libsodiumChaCha: ChaChaImpl | undefined = chacha.name === 'libsodium' ? chacha : undefined

/**
 * Seal `body` into `packet`: the header (bytes 0 to headerBytes-1, already written, its last 12
 * bytes the nonce) is the additional data, the body goes encrypted right after it, then the tag.
 */
export function sealInPlace (cipher: SyncCipher, key: AeadKey, packet: Buffer, headerBytes: number, body: Buffer): void {
  const aad = packet.subarray(0, headerBytes)
  const nonce = packet.subarray(headerBytes - AEAD_NONCE_BYTES, headerBytes)
  const out = packet.subarray(headerBytes, headerBytes + body.length)
  const tag = packet.subarray(headerBytes + body.length, headerBytes + body.length + AEAD_TAG_BYTES)
  if (cipher === 'chacha20-poly1305') {
    chacha.seal(out, tag, body, aad, nonce, key)
    return
  }
  const aes = createCipheriv('aes-256-gcm', key.aesKeyObject, nonce, { authTagLength: AEAD_TAG_BYTES })
  aes.setAAD(aad)
  aes.update(body).copy(out)
  aes.final() // GCM: no bytes held back
  aes.getAuthTag().copy(tag)
}

/** The body of a sealed packet laid out as sealInPlace writes it; undefined when the tag fails. */
export function openPacket (cipher: SyncCipher, key: AeadKey, packet: Buffer, headerBytes: number, bodyLen: number): Buffer | undefined {
  const aad = packet.subarray(0, headerBytes)
  const nonce = packet.subarray(headerBytes - AEAD_NONCE_BYTES, headerBytes)
  const cipherText = packet.subarray(headerBytes, headerBytes + bodyLen)
  const tag = packet.subarray(headerBytes + bodyLen, headerBytes + bodyLen + AEAD_TAG_BYTES)
  if (cipher === 'chacha20-poly1305') {
    const body = Buffer.allocUnsafe(bodyLen)
    return chacha.open(body, cipherText, tag, aad, nonce, key) ? body : undefined
  }
  try {
    const aes = createDecipheriv('aes-256-gcm', key.aesKeyObject, nonce, { authTagLength: AEAD_TAG_BYTES })
    aes.setAAD(aad)
    aes.setAuthTag(tag)
    const body = aes.update(cipherText)
    aes.final() // GCM: no bytes held back; throws when the tag does not verify
    return body
  } catch {
    return undefined
  }
}
