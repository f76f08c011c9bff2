import assert from 'node:assert/strict'
import { test } from 'node:test'
import { crc32c } from '../../src/proxy/crc32c.js'

test('CRC32C check value: "123456789" gives 0xE3069283 (the Castagnoli polynomial, not zlib.crc32\'s IEEE one)', () => {
  assert.equal(crc32c(Buffer.from('123456789', 'latin1')), 0xe3069283)
  assert.equal(crc32c(Buffer.alloc(0)), 0)
})

test('CRC32C of the RFC 3720 B.4 (iSCSI) vectors', () => {
  assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa)
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43)
  assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e)
  assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))), 0x113fdb5c)
})

test('CRC32C over a range, and continued from an earlier range, equals the CRC over the whole', () => {
  const data = Buffer.from('the quick brown fox jumps over the lazy dog', 'latin1')
  const whole = crc32c(data)
  for (const cut of [0, 1, 7, data.length - 1, data.length]) {
    assert.equal(crc32c(data, cut, data.length, crc32c(data, 0, cut)), whole, `cut at ${cut}`)
  }
  assert.equal(crc32c(Buffer.concat([Buffer.from('xx'), Buffer.from('123456789'), Buffer.from('yy')]), 2, 11), 0xe3069283)
})
