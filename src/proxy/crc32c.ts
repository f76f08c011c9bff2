/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78: iSCSI, SCTP), which the PROXY v2
 * PP2_TYPE_CRC32C TLV carries. Node's zlib.crc32 is the IEEE polynomial, not this one.
 * Table-driven, a byte at a time: it runs over one PROXY header (tens of bytes) per connection
 * that sends the TLV.
 */

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    table[n] = c
  }
  return table
})()

/**
 * The CRC32C of `data[start, end)`, as an unsigned 32-bit number. `crc` continues an earlier
 * call (the result over the bytes before `start`): crc32c(b, 0, n) === crc32c(b, k, n, crc32c(b, 0, k)).
 */
export function crc32c (data: Uint8Array, start = 0, end = data.length, crc = 0): number {
  let c = ~crc
  for (let i = start; i < end; i++) c = (TABLE[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8)
  return ~c >>> 0
}
