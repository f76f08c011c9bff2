/**
 * A small, allocation-light ClientHello reader for the bytes a worker sees before it hands the
 * socket to a `tls.Server`. It learns just enough to route the connection (SNI, TLS 1.3 offer,
 * legacy session ID, TLS 1.2 ticket, TLS 1.3 PSK identities) and never throws: network input
 * that is not a well-formed ClientHello gives `{ status: 'error', reason }` with a stable
 * snake_case reason, and the caller decides whether OpenSSL should see the bytes anyway.
 *
 * Wire format (RFC 8446 §5.1, §4.1.2, RFC 5246 §7.4.1.2):
 *   record:    type(1)=22 | legacy_record_version(2) 3.x | length(2) <= 2^14 | fragment
 *   handshake: msg_type(1)=1 | length(3) | ClientHello  (may span several records)
 *   ClientHello: legacy_version(2) | random(32) | session_id<0..32> | cipher_suites<2..2^16-2>
 *                | compression_methods<1..2^8-1> | extensions<0..2^16-1> (optional when empty)
 */

import { u16, u24 } from '../util/bytes.js'

export interface ClientHelloInfo {
  /** host_name from SNI, lowercased; absent when not sent or not a plausible DNS name */
  serverName?: string
  /** A host_name was sent but is not a plausible DNS name (no certificate can name it). */
  serverNameImplausible?: true
  /** e.g. 0x0303 */
  legacyVersion: number
  /** from the supported_versions extension (empty if absent), in client order, GREASE included */
  supportedVersions: readonly number[]
  offersTls13: boolean
  /** legacy session id (may be empty) */
  sessionId: Buffer
  /** TLS 1.2 session_ticket extension contents, if present and non-empty */
  sessionTicket?: Buffer
  sessionTicketExtPresent: boolean
  /** TLS 1.3 pre_shared_key identities */
  pskIdentities: readonly Buffer[]
  /** first 16 bytes of the presented ticket: PSK identity[0] if >= 16 bytes, else the 1.2 ticket */
  ticketKeyName?: Buffer
  /** The client asked for a stapled OCSP response (status_request). */
  statusRequest: boolean
  /**
   * What the client says about ECDSA, as SIGNATURES_* bits: the schemes in signature_algorithms,
   * an ECDSA cipher suite offered, the groups in supported_groups. Where a context goes through
   * OpenSSL's SNI callback (with OCSP stapling), tlsfleet, not OpenSSL, chooses between a name's
   * ECDSA and RSA certificates (certificate-choice.ts).
   */
  signatures: number
}

/** signature_algorithms was sent. */
export const SIGNATURES_SENT = 1
/** An ECDSA scheme with SHA-256/384/512, of any curve (TLS 1.2's hash/ecdsa pairs, and the TLS 1.3 schemes). */
export const SIGNATURES_ECDSA = 2
/** ecdsa_secp256r1_sha256, ecdsa_secp384r1_sha384, ecdsa_secp521r1_sha512 (TLS 1.3 binds the curve). */
export const SIGNATURES_ECDSA_P256 = 4
export const SIGNATURES_ECDSA_P384 = 8
export const SIGNATURES_ECDSA_P521 = 16
/** An ECDHE-ECDSA cipher suite is offered (TLS 1.0-1.2). */
export const SIGNATURES_ECDSA_SUITE = 32
/** supported_groups was sent, and which of the NIST curves it names. */
export const SIGNATURES_GROUPS_SENT = 64
export const SIGNATURES_GROUP_P256 = 128
export const SIGNATURES_GROUP_P384 = 256
export const SIGNATURES_GROUP_P521 = 512

export type ClientHelloErrorReason = 'not_tls' | 'not_client_hello' | 'malformed' | 'too_large' | 'sslv2_hello'

export type ClientHelloResult =
  /** `needBytes`: no parse can complete before the buffer holds this many bytes (when known). */
  | { status: 'incomplete'; needBytes?: number }
  | { status: 'ok'; hello: ClientHelloInfo }
  | { status: 'error'; reason: ClientHelloErrorReason }

/** Largest TLS plaintext record fragment (RFC 8446 §5.1). */
export const MAX_RECORD_FRAGMENT = 16384
/** Largest ClientHello handshake body we accept (large post-quantum key shares still fit). */
export const MAX_CLIENT_HELLO_LENGTH = 16384
/** Legit clients use one or two records; this bounds buffering against 1-byte fragmentation. */
export const MAX_CLIENT_HELLO_RECORDS = 64
/** OpenSSL / Node ticket key names are 16 bytes. */
export const TICKET_KEY_NAME_LENGTH = 16

const RECORD_HEADER = 5
const HANDSHAKE_HEADER = 4
const CONTENT_HANDSHAKE = 22
const HANDSHAKE_CLIENT_HELLO = 1

const EXT_SERVER_NAME = 0
const EXT_PRE_SHARED_KEY = 41
const EXT_SUPPORTED_VERSIONS = 43
const EXT_SESSION_TICKET = 35
const EXT_SIGNATURE_ALGORITHMS = 13
const EXT_STATUS_REQUEST = 5
const EXT_SUPPORTED_GROUPS = 10
/** SignatureScheme low byte for ECDSA (TLS 1.2's SignatureAlgorithm.ecdsa; TLS 1.3's ecdsa_secp*_sha*). */
const SIGNATURE_ECDSA = 3
const TLS13 = 0x0304
const MAX_HOST_NAME_LENGTH = 253

const INCOMPLETE: ClientHelloResult = Object.freeze({ status: 'incomplete' })
/** Shared by every hello without the extension: an empty array per hello is an allocation per connection. */
const NO_VERSIONS: readonly number[] = Object.freeze([])
const NO_IDENTITIES: readonly Buffer[] = Object.freeze([])
/** The empty session ID (a Buffer of length 0 has no byte to change). */
const NO_BYTES = Buffer.alloc(0)
const MALFORMED: ClientHelloResult = Object.freeze({ status: 'error', reason: 'malformed' })

/** Incomplete until the buffer holds `needBytes`: a caller fed a byte at a time parses again only then. */
function incomplete (needBytes: number): ClientHelloResult {
  return { status: 'incomplete', needBytes }
}

function fail (reason: ClientHelloErrorReason): ClientHelloResult {
  return { status: 'error', reason }
}

/**
 * Parse the ClientHello at the start of `buf` (the raw bytes of a connection, from its first
 * byte). Returns 'incomplete' while more bytes are needed; bytes after the ClientHello are ignored.
 *
 * This runs once per connection, so it reads with offsets into `buf` and allocates only the
 * Buffers it returns: a Buffer view (`subarray`) costs about as much as parsing a whole
 * extension, and an earlier version that took one per field spent ~20 µs per ClientHello.
 */
export function parseClientHello (buf: Buffer): ClientHelloResult {
  try {
    return parse(buf)
  } catch {
    // Defensive only: every read below is bounds-checked, so this is not expected to run.
    return fail('malformed')
  }
}

function parse (buf: Buffer): ClientHelloResult {
  if (buf.length === 0) return INCOMPLETE
  if (buf[0] !== CONTENT_HANDSHAKE) return sslv2ClientHello(buf)
  if (buf.length < 2) return INCOMPLETE
  if (buf[1] !== 3) return fail('not_tls')

  // Reassemble the handshake message from as many records as it takes. Nearly every client
  // sends it in one record: `first` is then the whole message; `more` only exists otherwise.
  let first = -1 // offset in buf of the first record's fragment
  let more: Buffer[] | undefined
  let assembled = 0
  let needed = -1 // total handshake bytes (header + body) once the header is known
  let offset = 0
  let records = 0
  while (needed < 0 || assembled < needed) {
    if (buf.length < offset + RECORD_HEADER) return incomplete(offset + RECORD_HEADER)
    if (buf[offset] !== CONTENT_HANDSHAKE || buf[offset + 1] !== 3) {
      // The first record was already checked; anything else interleaved mid-hello is wrong.
      return MALFORMED
    }
    const length = u16(buf, offset + 3)
    if (length === 0 || length > MAX_RECORD_FRAGMENT) return MALFORMED
    if (++records > MAX_CLIENT_HELLO_RECORDS) return fail('too_large')
    const start = offset + RECORD_HEADER
    const available = Math.min(length, buf.length - start)
    // Look at the handshake header as early as possible so junk is rejected without waiting.
    if (assembled === 0 && available > 0 && buf[start] !== HANDSHAKE_CLIENT_HELLO) {
      return fail('not_client_hello')
    }
    if (needed < 0 && assembled + available >= HANDSHAKE_HEADER) {
      // Rare: a header split across records (only a client fragmenting on purpose does that).
      const bodyLength = assembled === 0
        ? u24(buf, start + 1)
        : u24(Buffer.concat([...(more ?? [buf.subarray(first, first + assembled)]), buf.subarray(start, start + available)]), 1)
      if (bodyLength > MAX_CLIENT_HELLO_LENGTH) return fail('too_large')
      needed = HANDSHAKE_HEADER + bodyLength
    }
    // The whole ClientHello must end exactly at a record boundary: nothing may follow it in
    // the handshake stream of this flight (TLS 1.3 early data uses its own record type).
    if (needed >= 0 && assembled + length > needed) return MALFORMED
    if (available < length) return incomplete(start + length)
    if (first < 0) first = start
    else (more ??= [buf.subarray(first, first + assembled)]).push(buf.subarray(start, start + length))
    assembled += length
    offset = start + length
  }
  if (more === undefined) return parseBody(buf, first + HANDSHAKE_HEADER, first + needed)
  return parseBody(Buffer.concat(more, assembled), HANDSHAKE_HEADER, needed)
}

/**
 * A ClientHello in the SSLv2-compatible format (RFC 5246 Appendix E.2): a 2-byte record header
 * with the top bit set, msg_type 1, then version 3.x. Java 6 and other clients of the `old`
 * profile's era send it; OpenSSL still answers it (TLS 1.0-1.2; it carries no extensions, so
 * no SNI), so it is handed on ('sslv2_hello') rather than refused as not TLS.
 */
function sslv2ClientHello (buf: Buffer): ClientHelloResult {
  if (((buf[0] as number) & 0x80) === 0) return fail('not_tls')
  if (buf.length < 4) return incomplete(4)
  return buf[2] === HANDSHAKE_CLIENT_HELLO && buf[3] === 3 ? fail('sslv2_hello') : fail('not_tls')
}

/** A copy of b[start, end): results must not alias the connection's bytes. */
function copyOf (b: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start)
  b.copy(out, 0, start, end)
  return out
}

/** Parses the ClientHello body b[start, end). */
function parseBody (b: Buffer, start: number, end: number): ClientHelloResult {
  let p = start
  if (end - p < 2 + 32 + 1) return MALFORMED
  const legacyVersion = u16(b, p)
  p += 2 + 32 // version, random
  const sessionIdLength = b[p++] as number
  if (sessionIdLength > 32 || end - p < sessionIdLength) return MALFORMED
  const sessionId = sessionIdLength === 0 ? NO_BYTES : copyOf(b, p, p + sessionIdLength)
  p += sessionIdLength
  if (end - p < 2) return MALFORMED
  const ciphersLength = u16(b, p)
  p += 2
  if (end - p < ciphersLength || ciphersLength < 2 || ciphersLength % 2 !== 0) return MALFORMED
  const ciphersStart = p
  p += ciphersLength
  if (end - p < 1) return MALFORMED
  const compressionLength = b[p++] as number
  if (end - p < compressionLength || compressionLength < 1) return MALFORMED
  p += compressionLength

  // Every field in the literal, the optional ones undefined: fields added later outgrow the
  // object's in-object slots (a property array allocated per connection) and give hellos
  // different shapes for the code that reads them.
  const hello: ClientHelloInfo = {
    serverName: undefined,
    serverNameImplausible: undefined,
    legacyVersion,
    supportedVersions: NO_VERSIONS,
    offersTls13: false,
    sessionId,
    sessionTicket: undefined,
    sessionTicketExtPresent: false,
    pskIdentities: NO_IDENTITIES,
    ticketKeyName: undefined,
    statusRequest: false,
    signatures: offersEcdsaSuite(b, ciphersStart, ciphersStart + ciphersLength) ? SIGNATURES_ECDSA_SUITE : 0
  }
  if (p === end) return { status: 'ok', hello } // pre-extension hello (SSLv3-era)

  if (end - p < 2 || u16(b, p) !== end - p - 2) return MALFORMED
  p += 2
  // RFC 8446 §4.2: at most one extension of each type. Types below 64 (nearly all a client
  // sends) are remembered as bits, others in an array made only when one comes.
  let seenLow = 0
  let seenHigh = 0
  let seenOther: number[] | undefined
  while (p < end) {
    if (end - p < 4) return MALFORMED
    const type = u16(b, p)
    const length = u16(b, p + 2)
    p += 4
    if (end - p < length) return MALFORMED
    if (type < 32) {
      if ((seenLow & (1 << type)) !== 0) return MALFORMED
      seenLow |= 1 << type
    } else if (type < 64) {
      if ((seenHigh & (1 << (type - 32))) !== 0) return MALFORMED
      seenHigh |= 1 << (type - 32)
    } else {
      seenOther ??= []
      if (seenOther.includes(type)) return MALFORMED
      seenOther.push(type)
    }
    let ok = true
    switch (type) {
      case EXT_SERVER_NAME: ok = readServerName(b, p, p + length, hello); break
      case EXT_SUPPORTED_VERSIONS: ok = readSupportedVersions(b, p, p + length, hello); break
      case EXT_SESSION_TICKET:
        hello.sessionTicketExtPresent = true
        if (length > 0) hello.sessionTicket = copyOf(b, p, p + length)
        break
      case EXT_PRE_SHARED_KEY: ok = readPreSharedKey(b, p, p + length, hello); break
      case EXT_SIGNATURE_ALGORITHMS: ok = readSignatureAlgorithms(b, p, p + length, hello); break
      case EXT_SUPPORTED_GROUPS: ok = readSupportedGroups(b, p, p + length, hello); break
      case EXT_STATUS_REQUEST: hello.statusRequest = true; break
    }
    if (!ok) return MALFORMED
    p += length
  }

  hello.offersTls13 = hello.supportedVersions.includes(TLS13)
  const psk = hello.pskIdentities[0]
  // A view into our own copy of the ticket or identity (not the connection's bytes).
  if (psk !== undefined && psk.length >= TICKET_KEY_NAME_LENGTH) {
    hello.ticketKeyName = psk.subarray(0, TICKET_KEY_NAME_LENGTH)
  } else if (hello.sessionTicket !== undefined && hello.sessionTicket.length >= TICKET_KEY_NAME_LENGTH) {
    hello.ticketKeyName = hello.sessionTicket.subarray(0, TICKET_KEY_NAME_LENGTH)
  }
  return { status: 'ok', hello }
}

/**
 * RFC 6066 §3: ServerNameList<1..2^16-1> of { name_type(1), HostName<1..2^16-1> }, in b[p, end).
 * The first plausible host_name wins; a name we could not match a certificate against is simply
 * not reported.
 */
function readServerName (b: Buffer, p: number, end: number, hello: ClientHelloInfo): boolean {
  if (end - p < 2 || u16(b, p) !== end - p - 2 || end - p === 2) return false
  p += 2
  while (p < end) {
    if (end - p < 3) return false
    const nameType = b[p] as number
    const length = u16(b, p + 1)
    p += 3
    if (length === 0 || end - p < length) return false
    if (nameType === 0 && hello.serverName === undefined) {
      const kind = length <= MAX_HOST_NAME_LENGTH ? hostName(b, p, p + length) : NOT_HOST_NAME
      if (kind === NOT_HOST_NAME) {
        hello.serverNameImplausible = true
      } else {
        // Lowercased only when it has capitals: toLowerCase makes a new string even when nothing changes.
        const name = b.toString('latin1', p, p + length)
        hello.serverName = kind === HOST_NAME_CAPITALS ? name.toLowerCase() : name
      }
    }
    p += length
  }
  return true
}

const NOT_HOST_NAME = 0
const HOST_NAME_LOWERCASE = 1
const HOST_NAME_CAPITALS = 2

/**
 * Letters (either case), digits, '-', '_' (seen in the wild) and dots: labels of 1-63 bytes that
 * neither start nor end with '-', no empty label except a trailing dot. Byte by byte rather than
 * a regular expression, which cost more than the rest of the parse. Says whether it has capitals.
 */
function hostName (b: Buffer, start: number, end: number): number {
  let label = 0
  let last = 0
  let capitals = false
  for (let i = start; i < end; i++) {
    const c = b[i] as number
    if (c === 0x2e) { // '.'
      if (label === 0 || last === 0x2d) return NOT_HOST_NAME
      label = 0
    } else {
      const capital = c >= 0x41 && c <= 0x5a
      const letter = (c >= 0x61 && c <= 0x7a) || capital
      const digit = c >= 0x30 && c <= 0x39
      if (!letter && !digit && c !== 0x5f && c !== 0x2d) return NOT_HOST_NAME
      if (label === 0 && c === 0x2d) return NOT_HOST_NAME
      if (++label > 63) return NOT_HOST_NAME
      if (capital) capitals = true
    }
    last = c
  }
  // A trailing dot ends with label 0, which is fine unless the name was only a dot.
  const ok = (label > 0 && last !== 0x2d) || (label === 0 && end - start > 1)
  return !ok ? NOT_HOST_NAME : capitals ? HOST_NAME_CAPITALS : HOST_NAME_LOWERCASE
}

/**
 * RFC 8446 §4.2.3 / RFC 5246 §7.4.1.4.1: SignatureScheme supported_signature_algorithms<2..2^16-2>
 * in b[p, end). ECDSA is a scheme whose low byte is 3 with a hash byte of 4-6; in TLS 1.3 the
 * scheme also names the curve (0x0403 P-256, 0x0503 P-384, 0x0603 P-521).
 */
function readSignatureAlgorithms (b: Buffer, p: number, end: number, hello: ClientHelloInfo): boolean {
  if (end - p < 2 || u16(b, p) !== end - p - 2 || end - p === 2 || (end - p) % 2 !== 0) return false
  let found = SIGNATURES_SENT
  for (p += 2; p < end; p += 2) {
    const hash = b[p] as number
    // SHA-256/384/512 only: OpenSSL refuses ecdsa_sha1 (and SHA-224) above security level 0.
    if (b[p + 1] !== SIGNATURE_ECDSA || hash < 4 || hash > 6) continue
    found |= SIGNATURES_ECDSA
    if (hash === 4) found |= SIGNATURES_ECDSA_P256
    else if (hash === 5) found |= SIGNATURES_ECDSA_P384
    else if (hash === 6) found |= SIGNATURES_ECDSA_P521
  }
  hello.signatures |= found
  return true
}

/** RFC 8446 §4.2.7: NamedGroup named_group_list<2..2^16-1> in b[p, end); secp256r1 23, secp384r1 24, secp521r1 25. */
function readSupportedGroups (b: Buffer, p: number, end: number, hello: ClientHelloInfo): boolean {
  if (end - p < 2 || u16(b, p) !== end - p - 2 || end - p === 2 || (end - p) % 2 !== 0) return false
  let found = SIGNATURES_GROUPS_SENT
  for (p += 2; p < end; p += 2) {
    const group = u16(b, p)
    if (group === 23) found |= SIGNATURES_GROUP_P256
    else if (group === 24) found |= SIGNATURES_GROUP_P384
    else if (group === 25) found |= SIGNATURES_GROUP_P521
  }
  hello.signatures |= found
  return true
}

/** Cipher suites that authenticate with ECDSA (TLS 1.0-1.2). */
const ECDSA_SUITES = new Set([
  0xc006, 0xc007, 0xc008, 0xc009, 0xc00a, // ECDHE_ECDSA with NULL, RC4, 3DES, AES_128_CBC_SHA, AES_256_CBC_SHA
  0xc023, 0xc024, 0xc02b, 0xc02c, // AES CBC SHA256/384, AES GCM
  0xcca9, // CHACHA20_POLY1305
  0xc0ac, 0xc0ad, 0xc0ae, 0xc0af, // AES CCM
  0xc048, 0xc049, 0xc05c, 0xc05d, // ARIA
  0xc072, 0xc073, 0xc086, 0xc087 // Camellia
])

function offersEcdsaSuite (b: Buffer, start: number, end: number): boolean {
  for (let p = start; p < end; p += 2) {
    const high = b[p]
    if ((high === 0xc0 || high === 0xcc) && ECDSA_SUITES.has(u16(b, p))) return true
  }
  return false
}

/** RFC 8446 §4.2.1: ProtocolVersion versions<2..254> in the ClientHello, in b[p, end). */
function readSupportedVersions (b: Buffer, p: number, end: number, hello: ClientHelloInfo): boolean {
  if (end - p < 1) return false
  const length = b[p] as number
  p += 1
  if (end - p !== length || length < 2 || length % 2 !== 0) return false
  // Sized once (a push grew an empty array to 17 slots).
  const versions = new Array<number>(length / 2)
  for (let i = 0; p < end; p += 2) versions[i++] = u16(b, p)
  hello.supportedVersions = versions
  return true
}

/**
 * RFC 8446 §4.2.11: identities<7..2^16-1> of { identity<1..2^16-1>, obfuscated_ticket_age(4) },
 * then binders<33..2^16-1> of PskBinderEntry<32..255>, in b[p, end).
 */
function readPreSharedKey (b: Buffer, p: number, end: number, hello: ClientHelloInfo): boolean {
  if (end - p < 2) return false
  const identitiesLength = u16(b, p)
  const identitiesEnd = p + 2 + identitiesLength
  if (identitiesEnd + 2 > end) return false
  const bindersLength = u16(b, identitiesEnd)
  if (identitiesEnd + 2 + bindersLength !== end) return false
  if (identitiesLength < 7 || bindersLength < 33) return false
  const found: Buffer[] = []
  for (p += 2; p < identitiesEnd;) {
    if (identitiesEnd - p < 2) return false
    const length = u16(b, p)
    p += 2
    if (length === 0 || identitiesEnd - p < length + 4) return false
    found.push(copyOf(b, p, p + length))
    p += length + 4
  }
  let binderCount = 0
  for (p = identitiesEnd + 2; p < end;) {
    const length = b[p] as number
    p += 1
    if (length < 32 || end - p < length) return false
    p += length
    binderCount++
  }
  if (binderCount !== found.length) return false
  hello.pskIdentities = found
  return true
}
