import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { FarmKeyRing } from '../../src/sync/farm-keys.js'
import {
  AEAD_TAG_BYTES, chachaBackend, cipherOfVersion, libsodiumChaCha, nodeChaCha, openPacket, sealInPlace, SYNC_CIPHERS, VERSION_OF_CIPHER
} from '../../src/sync/sync-aead.js'

const key = new FarmKeyRing([{ id: 1, secret: Buffer.alloc(32, 0x5a) }]).current()
const HEADER = 43

function packetWith (body: Buffer): Buffer {
  const packet = Buffer.alloc(HEADER + body.length + AEAD_TAG_BYTES)
  randomBytes(HEADER).copy(packet) // any header: it is the additional data, its last 12 bytes the nonce
  return packet
}

describe('sync AEADs (sync-aead.ts)', () => {
  it('libsodium runs ChaCha20-Poly1305 on this machine (sodium-native ships a prebuild for linux-x64)', () => {
    // CI runs on linux-x64: were sodium-native to stop loading there, the sync would fall back to
    // node:crypto silently (same bytes, ~5x the CPU per packet); this makes that visible.
    assert.equal(chachaBackend, 'libsodium')
    assert.ok(libsodiumChaCha !== undefined)
  })

  it('libsodium and node:crypto seal the same bytes and open each other\'s packets', () => {
    const sodium = libsodiumChaCha
    assert.ok(sodium !== undefined)
    for (const size of [0, 1, 63, 64, 65, 150, 1341]) {
      const plain = randomBytes(size)
      const aad = randomBytes(43)
      const nonce = randomBytes(12)
      const [a, b] = [Buffer.alloc(size), Buffer.alloc(size)]
      const [ta, tb] = [Buffer.alloc(16), Buffer.alloc(16)]
      sodium.seal(a, ta, plain, aad, nonce, key)
      nodeChaCha.seal(b, tb, plain, aad, nonce, key)
      assert.deepEqual(a, b, `ciphertext, ${size} bytes`)
      assert.deepEqual(ta, tb, `tag, ${size} bytes`)
      for (const opener of [sodium, nodeChaCha]) assert.deepEqual(opener.open(a, ta, aad, nonce, key), plain, `${opener.name} opens, ${size} bytes`)
    }
  })

  it('both implementations refuse a flipped bit anywhere (ciphertext, tag, additional data, nonce)', () => {
    const sodium = libsodiumChaCha
    assert.ok(sodium !== undefined)
    const plain = randomBytes(150), aad = randomBytes(43), nonce = randomBytes(12)
    const ct = Buffer.alloc(150), tag = Buffer.alloc(16)
    nodeChaCha.seal(ct, tag, plain, aad, nonce, key)
    for (const part of [ct, tag, aad, nonce]) {
      for (const at of [0, part.length - 1]) {
        part[at] = (part[at] as number) ^ 0x01
        for (const opener of [sodium, nodeChaCha]) assert.equal(opener.open(ct, tag, aad, nonce, key), undefined, opener.name)
        part[at] = (part[at] as number) ^ 0x01
      }
    }
    for (const opener of [sodium, nodeChaCha]) assert.deepEqual(opener.open(ct, tag, aad, nonce, key), plain, `${opener.name}: the restored packet opens`)
  })

  it('libsodium refuses a forged tag by its return value: no Error is made (a thrown one made a forged packet cost ~4x a good one)', () => {
    const sodium = libsodiumChaCha
    assert.ok(sodium !== undefined)
    const plain = randomBytes(150), aad = randomBytes(43), nonce = randomBytes(12)
    const ct = Buffer.alloc(150), tag = Buffer.alloc(16)
    sodium.seal(ct, tag, plain, aad, nonce, key)
    tag[0] = (tag[0] as number) ^ 0x01
    let made = 0
    const Original = globalThis.Error
    globalThis.Error = class extends Original {
      constructor (...args: ConstructorParameters<ErrorConstructor>) {
        super(...args)
        made++
      }
    } as ErrorConstructor
    let opened: Array<Buffer | undefined>
    try {
      opened = Array.from({ length: 10 }, () => sodium.open(ct, tag, aad, nonce, key))
    } finally {
      globalThis.Error = Original
    }
    assert.deepEqual(opened, Array.from({ length: 10 }, () => undefined))
    assert.equal(made, 0, 'Errors made by 10 refused opens')
  })

  it('libsodium\'s open refuses a tag, nonce or key of the wrong size instead of handing it to the binding (which would abort)', () => {
    const sodium = libsodiumChaCha
    assert.ok(sodium !== undefined)
    const plain = randomBytes(150), aad = randomBytes(43), nonce = randomBytes(12)
    const ct = Buffer.alloc(150), tag = Buffer.alloc(16)
    sodium.seal(ct, tag, plain, aad, nonce, key)
    assert.equal(sodium.open(ct, tag.subarray(0, 15), aad, nonce, key), undefined, 'a 15-byte tag')
    assert.equal(sodium.open(ct, tag, aad, nonce.subarray(0, 11), key), undefined, 'an 11-byte nonce')
    assert.equal(sodium.open(ct, tag, aad, nonce, { ...key, chachaKey: key.chachaKey.subarray(0, 31) }), undefined, 'a 31-byte key')
    assert.deepEqual(sodium.open(ct, tag, aad, nonce, key), plain)
  })

  it('sealInPlace / openPacket round-trip each cipher, and a packet opens only under the cipher that sealed it', () => {
    for (const cipher of SYNC_CIPHERS) {
      const body = randomBytes(150)
      const packet = packetWith(body)
      sealInPlace(cipher, key, packet, HEADER, body)
      assert.notDeepEqual(packet.subarray(HEADER, HEADER + 150), body, 'the body is encrypted')
      assert.deepEqual(openPacket(cipher, key, packet, HEADER, 150), body)
      const other = SYNC_CIPHERS.find((c) => c !== cipher) ?? cipher
      assert.equal(openPacket(other, key, packet, HEADER, 150), undefined)
    }
  })

  it('version bytes: 3 ChaCha20-Poly1305, 2 AES-256-GCM, nothing else', () => {
    assert.deepEqual(VERSION_OF_CIPHER, { 'aes-256-gcm': 2, 'chacha20-poly1305': 3 })
    for (const cipher of SYNC_CIPHERS) assert.equal(cipherOfVersion(VERSION_OF_CIPHER[cipher]), cipher)
    for (const v of [0, 1, 4, 255]) assert.equal(cipherOfVersion(v), undefined)
  })
})
