import net from 'node:net'
import { u16 } from '../util/bytes.js'
import { crc32c } from './crc32c.js'
import { PP2_TYPE_CRC32C } from './proxy-tlv.js'

/**
 * PROXY protocol v1 (text) and v2 (binary), as specified in HAProxy's proxy-protocol.txt.
 *
 * The parser is a pure function over the bytes received so far: it never throws, never keeps
 * state, and tells the caller whether it needs more bytes, found a header (and how long it is),
 * found none (auto mode only), or must close the connection (with a short snake_case reason
 * that can be used as a metric label).
 */

export type ProxyMode = 'off' | 'v1' | 'v2' | 'auto'

export interface ProxyAddress { address: string; port: number }

export interface ProxyHeader {
  version: 1 | 2
  /** v1 UNKNOWN maps to 'local' semantics: no addresses. */
  command: 'proxy' | 'local'
  family: 'tcp4' | 'tcp6' | 'unix' | 'unspec'
  source?: ProxyAddress
  destination?: ProxyAddress
  /** v2 only; [] for v1. */
  tlvs: Array<{ type: number; value: Buffer }>
}

export type ProxyParseResult =
  | { status: 'incomplete' }
  | { status: 'absent' }
  | { status: 'ok'; header: ProxyHeader; length: number }
  | { status: 'error'; reason: string }

/** Longest v1 line, CRLF included ("PROXY UNKNOWN" + two full IPv6 addresses and ports). */
export const PROXY_V1_MAX_LENGTH = 107

export const PROXY_V2_SIGNATURE: Buffer = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
])

/** Default cap on the v2 payload (addresses + TLVs) after the 16-byte fixed header. */
export const PROXY_V2_DEFAULT_MAX_LENGTH = 1024

/** v2 fixed header: signature (12), version/command (1), family/transport (1), length (2). */
export const PROXY_V2_HEADER_LENGTH = 16

const V1_PREFIX = Buffer.from('PROXY ', 'latin1')
const CR = 0x0d
const LF = 0x0a

// v2 family/transport bytes and the size of their address blocks.
const FAM_UNSPEC = 0x00
const FAM_TCP4 = 0x11
const FAM_UDP4 = 0x12
const FAM_TCP6 = 0x21
const FAM_UDP6 = 0x22
const FAM_UNIX_STREAM = 0x31
const FAM_UNIX_DGRAM = 0x32
const ADDRESS_BLOCK: ReadonlyMap<number, number> = new Map([
  [FAM_UNSPEC, 0],
  [FAM_TCP4, 12], [FAM_UDP4, 12],
  [FAM_TCP6, 36], [FAM_UDP6, 36],
  [FAM_UNIX_STREAM, 216], [FAM_UNIX_DGRAM, 216]
])
const UNIX_PATH_LENGTH = 108

type Fail = { status: 'error'; reason: string }
const fail = (reason: string): Fail => ({ status: 'error', reason })

/**
 * Parses a PROXY header at the start of `buf`.
 *
 * - mode 'v1' / 'v2': only that version is accepted; anything else is 'bad_signature'.
 * - mode 'auto': either version; bytes that cannot start either signature are 'absent'.
 * - `maxV2Length`: cap on the v2 declared length (bytes after the 16-byte fixed header);
 *   a larger declaration is 'v2_too_long' as soon as the fixed header is in.
 */
export function parseProxyHeader (
  buf: Buffer,
  mode: Exclude<ProxyMode, 'off'>,
  maxV2Length: number = PROXY_V2_DEFAULT_MAX_LENGTH
): ProxyParseResult {
  try {
    if (buf.length === 0) return { status: 'incomplete' }
    const maxV2 = Number.isInteger(maxV2Length) && maxV2Length >= 0 ? Math.min(maxV2Length, 0xffff) : PROXY_V2_DEFAULT_MAX_LENGTH
    const v1 = mode !== 'v2' && prefixMatches(buf, V1_PREFIX)
    const v2 = mode !== 'v1' && prefixMatches(buf, PROXY_V2_SIGNATURE)
    if (v1) return parseV1(buf)
    if (v2) return parseV2(buf, maxV2)
    return mode === 'auto' ? { status: 'absent' } : fail('bad_signature')
  } catch {
    // Defensive only: every path above is bounds-checked, but this is network input.
    return fail('internal_error')
  }
}

/**
 * True when the bytes we have agree with `signature` (over the shorter of the two). A byte loop:
 * two views and a `Buffer.equals` (a call into C++) cost more than the 12 compares.
 */
function prefixMatches (buf: Buffer, signature: Buffer): boolean {
  const n = Math.min(buf.length, signature.length)
  for (let i = 0; i < n; i++) if (buf[i] !== signature[i]) return false
  return true
}

// ---------------------------------------------------------------------------------------------
// v1

const PORT_RE = /^(?:0|[1-9][0-9]{0,4})$/

function parseV1 (buf: Buffer): ProxyParseResult {
  // Find the end of line within the 107-byte limit. A CR must be followed by LF, and a bare
  // LF is not a line end: both are malformed rather than "keep waiting".
  const limit = Math.min(buf.length, PROXY_V1_MAX_LENGTH)
  let cr = -1
  for (let i = 0; i < limit; i++) {
    const b = buf[i]
    if (b === LF) return fail('bad_crlf')
    if (b === CR) { cr = i; break }
  }
  if (cr === -1) return buf.length >= PROXY_V1_MAX_LENGTH ? fail('v1_too_long') : { status: 'incomplete' }
  if (cr + 2 > PROXY_V1_MAX_LENGTH) return fail('v1_too_long')
  if (cr + 1 >= buf.length) return { status: 'incomplete' }
  if (buf[cr + 1] !== LF) return fail('bad_crlf')
  const length = cr + 2

  const line = buf.toString('latin1', 0, cr)
  const parts = line.split(' ')
  const proto = parts[1]
  if (proto === 'UNKNOWN') {
    // "PROXY UNKNOWN" may be followed by anything (after a space); the receiver ignores it.
    return ok({ version: 1, command: 'local', family: 'unspec', tlvs: [] }, length)
  }
  if (proto !== 'TCP4' && proto !== 'TCP6') return fail('bad_family')
  if (parts.length !== 6) return fail('bad_format')
  const [, , src, dst, sport, dport] = parts as [string, string, string, string, string, string]
  const family = proto === 'TCP4' ? 'tcp4' : 'tcp6'
  const source = v1Address(src, family)
  const destination = v1Address(dst, family)
  if (source === undefined || destination === undefined) return fail('bad_address')
  const sourcePort = v1Port(sport)
  const destinationPort = v1Port(dport)
  if (sourcePort === undefined || destinationPort === undefined) return fail('bad_port')
  return ok({
    version: 1,
    command: 'proxy',
    family,
    source: { address: source, port: sourcePort },
    destination: { address: destination, port: destinationPort },
    tlvs: []
  }, length)
}

function v1Address (text: string, family: 'tcp4' | 'tcp6'): string | undefined {
  if (family === 'tcp4') return net.isIPv4(text) ? text : undefined
  // Zone ids ("fe80::1%eth0") mean nothing to the receiver; the spec has no room for them.
  if (text.includes('%') || !net.isIPv6(text)) return undefined
  return canonicalIPv6(text)
}

function v1Port (text: string): number | undefined {
  if (!PORT_RE.test(text)) return undefined
  const port = Number(text)
  return port <= 0xffff ? port : undefined
}

// ---------------------------------------------------------------------------------------------
// v2

function parseV2 (buf: Buffer, maxV2: number): ProxyParseResult {
  if (buf.length < PROXY_V2_HEADER_LENGTH) return { status: 'incomplete' }
  const verCmd = buf.readUInt8(12)
  const famByte = buf.readUInt8(13)
  const declared = buf.readUInt16BE(14)
  if (verCmd >> 4 !== 2) return fail('bad_version')
  const cmd = verCmd & 0x0f
  if (cmd !== 0 && cmd !== 1) return fail('bad_command')
  if (declared > maxV2) return fail('v2_too_long')

  if (cmd === 0) {
    // LOCAL: the receiver must accept it and ignore the family and addresses (spec 2.1). We
    // still read TLVs after a known address block; an unknown family, or a length too short
    // for its addresses, makes the whole block opaque.
    const addrLen = ADDRESS_BLOCK.get(famByte)
    const total = PROXY_V2_HEADER_LENGTH + declared
    if (buf.length < total) return { status: 'incomplete' }
    let tlvs: ProxyHeader['tlvs'] = []
    if (addrLen !== undefined && declared >= addrLen) {
      const parsed = parseTlvs(buf, PROXY_V2_HEADER_LENGTH + addrLen, total)
      if (typeof parsed === 'string') return fail(parsed)
      tlvs = parsed
    }
    return ok({ version: 2, command: 'local', family: 'unspec', tlvs }, total)
  }

  // PROXY: we only carry stream transports; datagram and unknown families are refused.
  if (famByte !== FAM_UNSPEC && famByte !== FAM_TCP4 && famByte !== FAM_TCP6 && famByte !== FAM_UNIX_STREAM) {
    return fail('bad_family')
  }
  const addrLen = ADDRESS_BLOCK.get(famByte) ?? 0
  if (declared < addrLen) return fail('bad_length')
  const total = PROXY_V2_HEADER_LENGTH + declared
  if (buf.length < total) return { status: 'incomplete' }

  // Every connection behind a balancer comes through here: TCP4 (the common case) and TLVs
  // are read at offsets into `buf`, without a view per field.
  const tlvs = total === PROXY_V2_HEADER_LENGTH + addrLen ? [] : parseTlvs(buf, PROXY_V2_HEADER_LENGTH + addrLen, total)
  if (typeof tlvs === 'string') return fail(tlvs)

  if (famByte === FAM_UNSPEC) {
    // "The receiver should ignore address information" for AF_UNSPEC.
    return ok({ version: 2, command: 'proxy', family: 'unspec', tlvs }, total)
  }
  if (famByte === FAM_TCP4) {
    const at = PROXY_V2_HEADER_LENGTH
    const source = { address: ipv4At(buf, at), port: u16(buf, at + 8) }
    const destination = { address: ipv4At(buf, at + 4), port: u16(buf, at + 10) }
    return ok({ version: 2, command: 'proxy', family: 'tcp4', source, destination, tlvs }, total)
  }
  const body = buf.subarray(PROXY_V2_HEADER_LENGTH, total)
  let source: ProxyAddress
  let destination: ProxyAddress
  let family: ProxyHeader['family']
  if (famByte === FAM_TCP6) {
    family = 'tcp6'
    const src = ipv6FromBytes(body.subarray(0, 16))
    const dst = ipv6FromBytes(body.subarray(16, 32))
    if (src === undefined || dst === undefined) return fail('bad_address')
    source = { address: src, port: body.readUInt16BE(32) }
    destination = { address: dst, port: body.readUInt16BE(34) }
  } else {
    family = 'unix'
    source = { address: unixPath(body.subarray(0, UNIX_PATH_LENGTH)), port: 0 }
    destination = { address: unixPath(body.subarray(UNIX_PATH_LENGTH, 2 * UNIX_PATH_LENGTH)), port: 0 }
  }
  return ok({ version: 2, command: 'proxy', family, source, destination, tlvs }, total)
}

/**
 * The TLVs in `buf[start, total)`, which they fill exactly: type (1), length (2, BE), value.
 * Else the reason to refuse the header: 'bad_tlv' when one overruns, or for a CRC32C TLV that
 * is not 4 bytes long or not the only one; 'bad_crc32c' when the header does not match its
 * CRC32C (spec 2.2.5; HAProxy refuses both). Headers without that TLV pay one compare per TLV.
 */
function parseTlvs (buf: Buffer, start: number, total: number): ProxyHeader['tlvs'] | 'bad_tlv' | 'bad_crc32c' {
  const tlvs: ProxyHeader['tlvs'] = []
  let crcAt = -1
  let offset = start
  while (offset < total) {
    if (offset + 3 > total) return 'bad_tlv'
    const type = buf[offset] as number
    const length = u16(buf, offset + 1)
    const valueAt = offset + 3
    if (valueAt + length > total) return 'bad_tlv'
    if (type === PP2_TYPE_CRC32C) {
      // Two would each be computed with the other's value in or zeroed: no sender means that.
      if (length !== 4 || crcAt !== -1) return 'bad_tlv'
      crcAt = valueAt
    }
    // Copy: the caller's buffer is a network chunk that will be reused or released.
    tlvs.push({ type, value: Buffer.from(buf.subarray(valueAt, valueAt + length)) })
    offset = valueAt + length
  }
  if (crcAt !== -1 && !crc32cMatches(buf, total, crcAt)) return 'bad_crc32c'
  return tlvs
}

const FOUR_ZEROES = new Uint8Array(4)

/**
 * The CRC32C of the whole header `buf[0, total)`, computed with its own 4-byte value (at
 * `valueAt`) read as zeroes, equals that value (big-endian). `buf` is left as it is: it may be
 * a chunk the socket still owns.
 */
function crc32cMatches (buf: Buffer, total: number, valueAt: number): boolean {
  const sent = (((buf[valueAt] as number) << 24) | ((buf[valueAt + 1] as number) << 16) | ((buf[valueAt + 2] as number) << 8) | (buf[valueAt + 3] as number)) >>> 0
  let crc = crc32c(buf, 0, valueAt)
  crc = crc32c(FOUR_ZEROES, 0, 4, crc)
  crc = crc32c(buf, valueAt + 4, total, crc)
  return crc === sent
}

/** '0' to '255', made once: an address is then four lookups and a concatenation. */
const DECIMAL_BYTE: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i))

function ipv4At (b: Buffer, at: number): string {
  return `${DECIMAL_BYTE[b[at] as number] as string}.${DECIMAL_BYTE[b[at + 1] as number] as string}.${DECIMAL_BYTE[b[at + 2] as number] as string}.${DECIMAL_BYTE[b[at + 3] as number] as string}`
}

function ipv6FromBytes (b: Buffer): string | undefined {
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16))
  return canonicalIPv6(groups.join(':'))
}

/** Same text Node uses for socket addresses (inet_ntop): lower case, longest zero run as '::'. */
function canonicalIPv6 (text: string): string | undefined {
  try {
    return new net.SocketAddress({ address: text, family: 'ipv6' }).address
  } catch {
    return undefined
  }
}

/**
 * A sun_path: NUL-terminated. Abstract sockets (leading NUL) are shown with '@', as ss does.
 * One character per byte (latin1): a path is bytes, not UTF-8, and what comes in must go out to
 * the backend byte for byte (as UTF-8, 108 0xff bytes grew to 324 and no longer fit the header:
 * the connection was cut, blamed on the backend).
 */
function unixPath (b: Buffer): string {
  if (b.length > 0 && b[0] === 0) {
    const rest = b.subarray(1)
    const end = rest.indexOf(0)
    const name = rest.subarray(0, end === -1 ? rest.length : end)
    return name.length === 0 ? '' : '@' + name.toString('latin1')
  }
  const end = b.indexOf(0)
  return b.subarray(0, end === -1 ? b.length : end).toString('latin1')
}

/** unixPath's inverse: a path (or '@name', an abstract name) NUL-padded to 108 bytes. Throws when longer. */
function unixPathBlock (path: string): Buffer {
  const block = Buffer.alloc(UNIX_PATH_LENGTH)
  const bytes = path.startsWith('@') ? Buffer.concat([Buffer.alloc(1), Buffer.from(path.slice(1), 'latin1')]) : Buffer.from(path, 'latin1')
  if (bytes.length > UNIX_PATH_LENGTH) throw new RangeError(`PROXY v2 header: Unix socket path ${JSON.stringify(path)} is longer than ${UNIX_PATH_LENGTH} bytes`)
  bytes.copy(block)
  return block
}

function ok (header: ProxyHeader, length: number): ProxyParseResult {
  return { status: 'ok', header, length }
}

// ---------------------------------------------------------------------------------------------
// Encoding (we are the sender: input comes from our own sockets, so bad input is a bug → throw)

type Endpoints =
  | { family: 'tcp4'; source: ProxyAddress; destination: ProxyAddress }
  | { family: 'tcp6'; source: ProxyAddress; destination: ProxyAddress }

/**
 * Picks TCP4 when both ends are IPv4 (IPv4-mapped IPv6 counts, as seen on dual-stack
 * listeners), otherwise TCP6 with any IPv4 end mapped to ::ffff:a.b.c.d.
 */
function endpoints (source: ProxyAddress, destination: ProxyAddress): Endpoints {
  const src = normalizeEndpoint(source, 'source')
  const dst = normalizeEndpoint(destination, 'destination')
  if (src.v4 !== undefined && dst.v4 !== undefined) {
    return {
      family: 'tcp4',
      source: { address: src.v4, port: source.port },
      destination: { address: dst.v4, port: destination.port }
    }
  }
  return {
    family: 'tcp6',
    source: { address: src.v6, port: source.port },
    destination: { address: dst.v6, port: destination.port }
  }
}

/** `v4` when the address is IPv4 or IPv4-mapped; `v6` always (canonical, zone id dropped). */
function normalizeEndpoint (a: ProxyAddress, which: string): { v4?: string; v6: string } {
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 0xffff) {
    throw new RangeError(`PROXY header: ${which} port ${String(a.port)} is not an integer in 0-65535`)
  }
  const text = a.address
  if (net.isIPv4(text)) return { v4: text, v6: `::ffff:${text}` }
  const bare = text.split('%')[0] ?? ''
  const v6 = net.isIPv6(bare) ? canonicalIPv6(bare) : undefined
  if (v6 === undefined) throw new TypeError(`PROXY header: ${which} address ${JSON.stringify(text)} is not an IP address`)
  const bytes = ipv6ToBytes(v6)
  const mapped = bytes.subarray(0, 12).equals(V4_MAPPED_PREFIX)
  return mapped ? { v4: ipv4At(bytes, 12), v6 } : { v6 }
}

const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])

/** Valid IPv6 text (checked by the caller) to its 16 bytes; handles '::' and a dotted tail. */
function ipv6ToBytes (text: string): Buffer {
  const out = Buffer.alloc(16)
  const toGroups = (part: string): number[] => {
    if (part === '') return []
    const groups: number[] = []
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const [a = 0, b = 0, c = 0, d = 0] = piece.split('.').map(Number)
        groups.push((a << 8) | b, (c << 8) | d)
      } else {
        groups.push(parseInt(piece, 16))
      }
    }
    return groups
  }
  const halves = text.split('::')
  const head = toGroups(halves[0] ?? '')
  const tail = halves.length > 1 ? toGroups(halves[1] ?? '') : []
  const groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
  groups.forEach((g, i) => { if (i < 8) out.writeUInt16BE(g, i * 2) })
  return out
}

/** `PROXY TCP4|TCP6 src dst sport dport\r\n`. Throws on an address or port that is not valid. */
export function encodeProxyV1 (source: ProxyAddress, destination: ProxyAddress): Buffer {
  const e = endpoints(source, destination)
  const proto = e.family === 'tcp4' ? 'TCP4' : 'TCP6'
  return Buffer.from(
    `PROXY ${proto} ${e.source.address} ${e.destination.address} ${e.source.port} ${e.destination.port}\r\n`,
    'latin1'
  )
}

/**
 * Binary v2 header. Undefined addresses give the LOCAL command with AF_UNSPEC (e.g. a health
 * check); TLVs are appended after the address block. A CRC32C TLV (4 bytes, its value ignored)
 * gets the header's checksum. Throws on invalid addresses, ports, TLV types or sizes.
 */
export function encodeProxyV2 (
  source: ProxyAddress | undefined,
  destination: ProxyAddress | undefined,
  tlvs: Array<{ type: number; value: Buffer }> = [],
  family: 'ip' | 'unix' = 'ip'
): Buffer {
  const tlvParts: Buffer[] = []
  let tlvLength = 0
  /** Where the CRC32C value sits in the TLV block (-1: none). */
  let crcAt = -1
  for (const tlv of tlvs) {
    if (!Number.isInteger(tlv.type) || tlv.type < 0 || tlv.type > 0xff) {
      throw new RangeError(`PROXY v2 TLV type ${String(tlv.type)} is not a byte`)
    }
    if (tlv.value.length > 0xffff) throw new RangeError(`PROXY v2 TLV 0x${tlv.type.toString(16)} value is longer than 65535 bytes`)
    if (tlv.type === PP2_TYPE_CRC32C && (tlv.value.length !== 4 || crcAt !== -1)) {
      throw new RangeError('PROXY v2 CRC32C TLV: one only, of 4 bytes')
    }
    const head = Buffer.alloc(3)
    head.writeUInt8(tlv.type, 0)
    head.writeUInt16BE(tlv.value.length, 1)
    if (tlv.type === PP2_TYPE_CRC32C) {
      crcAt = tlvLength + 3
      tlvParts.push(head, Buffer.alloc(4))
    } else {
      tlvParts.push(head, tlv.value)
    }
    tlvLength += 3 + tlv.value.length
  }
  const tlvBlock = Buffer.concat(tlvParts)

  let verCmd: number
  let famByte: number
  let addresses: Buffer
  if (source === undefined || destination === undefined) {
    verCmd = 0x20
    famByte = FAM_UNSPEC
    addresses = Buffer.alloc(0)
  } else if (family === 'unix') {
    // A client of the balancer's Unix socket, passed on as HAProxy itself would.
    verCmd = 0x21
    famByte = FAM_UNIX_STREAM
    addresses = Buffer.concat([unixPathBlock(source.address), unixPathBlock(destination.address)])
  } else {
    verCmd = 0x21
    const e = endpoints(source, destination)
    if (e.family === 'tcp4') {
      famByte = FAM_TCP4
      addresses = Buffer.alloc(12)
      Buffer.from(e.source.address.split('.').map(Number)).copy(addresses, 0)
      Buffer.from(e.destination.address.split('.').map(Number)).copy(addresses, 4)
      addresses.writeUInt16BE(e.source.port, 8)
      addresses.writeUInt16BE(e.destination.port, 10)
    } else {
      famByte = FAM_TCP6
      addresses = Buffer.alloc(36)
      ipv6ToBytes(e.source.address).copy(addresses, 0)
      ipv6ToBytes(e.destination.address).copy(addresses, 16)
      addresses.writeUInt16BE(e.source.port, 32)
      addresses.writeUInt16BE(e.destination.port, 34)
    }
  }
  const length = addresses.length + tlvBlock.length
  if (length > 0xffff) throw new RangeError(`PROXY v2 header payload of ${length} bytes exceeds 65535`)
  const fixed = Buffer.alloc(4)
  fixed.writeUInt8(verCmd, 0)
  fixed.writeUInt8(famByte, 1)
  fixed.writeUInt16BE(length, 2)
  const header = Buffer.concat([PROXY_V2_SIGNATURE, fixed, addresses, tlvBlock])
  // Computed over the whole header with the value still zero (spec 2.2.5).
  if (crcAt !== -1) header.writeUInt32BE(crc32c(header), PROXY_V2_HEADER_LENGTH + addresses.length + crcAt)
  return header
}
