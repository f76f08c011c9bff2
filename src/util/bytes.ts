/**
 * Big-endian reads at an offset, for the parsers that run once per connection (ClientHello,
 * PROXY header): indexing the bytes directly, without the bounds checks and argument
 * validation of Buffer.readUInt16BE, which cost more than the read. The caller has checked
 * that the bytes are there.
 */
export function u16 (b: Buffer, at: number): number {
  return ((b[at] as number) << 8) | (b[at + 1] as number)
}

export function u24 (b: Buffer, at: number): number {
  return ((b[at] as number) << 16) | ((b[at + 1] as number) << 8) | (b[at + 2] as number)
}
