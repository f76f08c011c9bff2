/**
 * The AEADs that seal sync v2 packets, and the code that runs them.
 *
 *   type SyncCipher = 'chacha20-poly1305' | 'aes-256-gcm'
 *   SYNC_CIPHERS                       both, the default first (DEFAULT_SYNC_CIPHER)
 *   VERSION_OF_CIPHER[cipher]          the packet's version byte: 3 ChaCha20-Poly1305, 2 AES-256-GCM
 *   cipherOfVersion (byte)             the reverse; undefined for any other byte
 *   interface AeadKey { aesKeyObject; chachaKey; chachaKeyObject }   (farm-keys.ts DerivedKey has them)
 *   sealInPlace (cipher, key, packet, headerBytes, body)   body encrypted after the header, tag after it
 *   openPacket (cipher, key, packet, headerBytes, bodyLen): Buffer | undefined   undefined: the tag failed
 *   backendOf (cipher): 'libsodium' | 'node:crypto'         which code runs a cipher here
 *   chachaBackend                                            backendOf('chacha20-poly1305')
 *
 * Both AEADs take a 32-byte key and a 12-byte nonce, make a 16-byte tag and authenticate the
 * packet's header as additional data, so the v2 layout is the same for both (docs/wire-protocol.md).
 *
 * Why ChaCha20-Poly1305 is the default: every node:crypto call costs 20-40 k instructions whatever
 * it computes (a Cipher object, its checks, the binding), which made the AES-GCM open more than
 * half of a sync update's cost and capped a node at ~50-70k updates/s. libsodium (sodium-native,
 * prebuilt, no compiler needed) opens a 190-byte ChaCha20-Poly1305 packet in one call for ~20 k
 * instructions (a fifth of the time); it has no AES-GCM (docs/benchmarks.md, Farm sync). Where
 * sodium-native does not load (a platform without a prebuild), node:crypto runs the same
 * ChaCha20-Poly1305: the same bytes, only slower. A forged packet's failed open costs about a
 * good one's (libsodium's result is read, no exception made: SodiumBinding below).
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto'
import { createRequire } from 'node:module'

export type SyncCipher = 'chacha20-poly1305' | 'aes-256-gcm'
export const SYNC_CIPHERS = ['chacha20-poly1305', 'aes-256-gcm'] as const satisfies readonly SyncCipher[]
export const DEFAULT_SYNC_CIPHER = SYNC_CIPHERS[0]

export const VERSION_OF_CIPHER: Readonly<Record<SyncCipher, number>> = {
  'aes-256-gcm': 2,
  'chacha20-poly1305': 3
}

/** VERSION_OF_CIPHER turned around, indexed by the version byte. */
const CIPHER_OF_VERSION: Array<SyncCipher | undefined> = []
for (const cipher of SYNC_CIPHERS) CIPHER_OF_VERSION[VERSION_OF_CIPHER[cipher]] = cipher

export function cipherOfVersion (version: number): SyncCipher | undefined {
  return CIPHER_OF_VERSION[version]
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

/**
 * One AEAD with a detached tag. `seal` writes the ciphertext and the tag into the caller's
 * buffers; `open` returns the plaintext in a buffer of its own, or undefined when the tag does
 * not verify (nothing of the plaintext is returned or left behind).
 */
interface AeadImpl {
  readonly name: 'libsodium' | 'node:crypto'
  seal (out: Buffer, tag: Buffer, plain: Buffer, aad: Buffer, nonce: Buffer, key: AeadKey): void
  open (cipherText: Buffer, tag: Buffer, aad: Buffer, nonce: Buffer, key: AeadKey): Buffer | undefined
}

/** The part of sodium-native this module calls (the package ships no types). */
interface SodiumAead {
  crypto_aead_chacha20poly1305_ietf_encrypt_detached (c: Buffer, mac: Buffer, m: Buffer, ad: Buffer, nsec: null, npub: Buffer, k: Buffer): number
}

/**
 * sodium-native's native binding, which its index.js wraps: the wrapper checks the arguments
 * and turns a failed open into a thrown Error, ~5-8 µs per forged packet (the Error and its
 * stack trace) against ~2 µs for a good one. The binding returns libsodium's result instead:
 * 0, or -1 when the tag fails (`m` zeroed). It asserts the sizes (an abort, not an exception),
 * so `open` checks them first.
 */
interface SodiumBinding {
  crypto_aead_chacha20poly1305_ietf_decrypt_detached (m: Buffer, c: Buffer, mac: Buffer, ad: Buffer, npub: Buffer, k: Buffer): number
}

/** An AEAD through node:crypto: a Cipher object per packet (the per-call cost above). */
function nodeAead (algorithm: 'chacha20-poly1305' | 'aes-256-gcm', keyOf: (key: AeadKey) => KeyObject): AeadImpl {
  return {
    name: 'node:crypto',
    seal (out, tag, plain, aad, nonce, key) {
      // @types/node types createCipheriv per mode; both modes take these options.
      const cipher = createCipheriv(algorithm as 'aes-256-gcm', keyOf(key), nonce, { authTagLength: AEAD_TAG_BYTES })
      cipher.setAAD(aad)
      cipher.update(plain).copy(out)
      cipher.final() // neither mode holds bytes back
      cipher.getAuthTag().copy(tag)
    },
    open (cipherText, tag, aad, nonce, key) {
      try {
        const decipher = createDecipheriv(algorithm as 'aes-256-gcm', keyOf(key), nonce, { authTagLength: AEAD_TAG_BYTES })
        decipher.setAAD(aad)
        decipher.setAuthTag(tag)
        const plain = decipher.update(cipherText)
        decipher.final() // throws when the tag does not verify
        return plain
      } catch {
        return undefined
      }
    }
  }
}

export const nodeChaCha: AeadImpl = nodeAead('chacha20-poly1305', (key) => key.chachaKeyObject)
const nodeAes: AeadImpl = nodeAead('aes-256-gcm', (key) => key.aesKeyObject)

function sodiumChaCha (sodium: SodiumAead, binding: SodiumBinding): AeadImpl {
  return {
    name: 'libsodium',
    seal (out, tag, plain, aad, nonce, key) {
      sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(out, tag, plain, aad, null, nonce, key.chachaKey)
    },
    open (cipherText, tag, aad, nonce, key) {
      if (tag.length !== AEAD_TAG_BYTES || nonce.length !== AEAD_NONCE_BYTES || key.chachaKey.length !== AEAD_KEY_BYTES) return undefined
      const plain = Buffer.allocUnsafe(cipherText.length)
      return binding.crypto_aead_chacha20poly1305_ietf_decrypt_detached(plain, cipherText, tag, aad, nonce, key.chachaKey) === 0 ? plain : undefined
    }
  }
}

/**
 * sodium-native when it loads here (a prebuilt addon), agrees with node:crypto and refuses a
 * bad tag by its return value (the binding is no documented API: checked, not assumed); else undefined.
 */
function loadSodiumChaCha (): AeadImpl | undefined {
  try {
    const require = createRequire(import.meta.url)
    const impl = sodiumChaCha(require('sodium-native') as SodiumAead, require('sodium-native/binding.js') as SodiumBinding)
    return agrees(impl, nodeChaCha) ? impl : undefined
  } catch {
    return undefined
  }
}

/** A known-answer round trip: both seal the same bytes, each opens the other's, both refuse a bad tag. */
function agrees (a: AeadImpl, b: AeadImpl): boolean {
  const raw = Buffer.alloc(AEAD_KEY_BYTES, 7)
  const key: AeadKey = { aesKeyObject: createSecretKey(raw), chachaKey: raw, chachaKeyObject: createSecretKey(raw) }
  const plain = Buffer.from('tlsfleet sync aead self-check')
  const aad = Buffer.from('header')
  const nonce = Buffer.alloc(AEAD_NONCE_BYTES, 1)
  const [outA, outB] = [Buffer.alloc(plain.length), Buffer.alloc(plain.length)]
  const [tagA, tagB] = [Buffer.alloc(AEAD_TAG_BYTES), Buffer.alloc(AEAD_TAG_BYTES)]
  a.seal(outA, tagA, plain, aad, nonce, key)
  b.seal(outB, tagB, plain, aad, nonce, key)
  const sameSealed = outA.equals(outB) && tagA.equals(tagB)
  const opened = a.open(outB, tagB, aad, nonce, key)?.equals(plain) === true && b.open(outA, tagA, aad, nonce, key)?.equals(plain) === true
  tagA[0] = (tagA[0] as number) ^ 1
  return sameSealed && opened && a.open(outA, tagA, aad, nonce, key) === undefined && b.open(outA, tagA, aad, nonce, key) === undefined
}

const chacha: AeadImpl = loadSodiumChaCha() ?? nodeChaCha
const IMPLS: Readonly<Record<SyncCipher, AeadImpl>> = { 'chacha20-poly1305': chacha, 'aes-256-gcm': nodeAes }
export function backendOf (cipher: SyncCipher): AeadImpl['name'] { return IMPLS[cipher].name }
export const chachaBackend = backendOf('chacha20-poly1305')
/** Tests only: the libsodium implementation when it loads here, to compare against node:crypto. */
export const libsodiumChaCha: AeadImpl | undefined = chacha.name === 'libsodium' ? chacha : undefined

/**
 * Seal `body` into `packet`: the header (bytes 0 to headerBytes-1, already written, its last 12
 * bytes the nonce) is the additional data, the body goes encrypted right after it, then the tag.
 */
export function sealInPlace (cipher: SyncCipher, key: AeadKey, packet: Buffer, headerBytes: number, body: Buffer): void {
  const tagAt = headerBytes + body.length
  IMPLS[cipher].seal(packet.subarray(headerBytes, tagAt), packet.subarray(tagAt, tagAt + AEAD_TAG_BYTES), body,
    packet.subarray(0, headerBytes), packet.subarray(headerBytes - AEAD_NONCE_BYTES, headerBytes), key)
}

/** The body of a packet laid out as sealInPlace writes it; undefined when the tag fails. */
export function openPacket (cipher: SyncCipher, key: AeadKey, packet: Buffer, headerBytes: number, bodyLen: number): Buffer | undefined {
  const tagAt = headerBytes + bodyLen
  return IMPLS[cipher].open(packet.subarray(headerBytes, tagAt), packet.subarray(tagAt, tagAt + AEAD_TAG_BYTES),
    packet.subarray(0, headerBytes), packet.subarray(headerBytes - AEAD_NONCE_BYTES, headerBytes), key)
}
