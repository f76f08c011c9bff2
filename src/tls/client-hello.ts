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

export interface ClientHelloInfo {
  /** host_name from SNI, lowercased; absent when not sent or not a plausible DNS name */
  serverName?: string
  /** e.g. 0x0303 */
  legacyVersion: number
  /** from the supported_versions extension (empty if absent), in client order, GREASE included */
  supportedVersions: number[]
  offersTls13: boolean
  /** legacy session id (may be empty) */
  sessionId: Buffer
  /** TLS 1.2 session_ticket extension contents, if present and non-empty */
  sessionTicket?: Buffer
  sessionTicketExtPresent: boolean
  /** TLS 1.3 pre_shared_key identities */
  pskIdentities: Buffer[]
  /** first 16 bytes of the presented ticket: PSK identity[0] if >= 16 bytes, else the 1.2 ticket */
  ticketKeyName?: Buffer
}

export type ClientHelloErrorReason = 'not_tls' | 'not_client_hello' | 'malformed' | 'too_large'

export type ClientHelloResult =
  | { status: 'incomplete' }
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
const TLS13 = 0x0304

const INCOMPLETE: ClientHelloResult = Object.freeze({ status: 'incomplete' })

function fail (reason: ClientHelloErrorReason): ClientHelloResult {
  return { status: 'error', reason }
}

/**
 * Parse the ClientHello at the start of `buf` (the raw bytes of a connection, from its first
 * byte). Returns 'incomplete' while more bytes are needed; bytes after the ClientHello are ignored.
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
  if (buf[0] !== CONTENT_HANDSHAKE) return fail('not_tls')
  if (buf.length < 2) return INCOMPLETE
  if (buf[1] !== 3) return fail('not_tls')

  // Reassemble the handshake message from as many records as it takes.
  const fragments: Buffer[] = []
  let assembled = 0
  let needed = -1 // total handshake bytes (header + body) once the header is known
  let offset = 0
  let records = 0
  while (needed < 0 || assembled < needed) {
    if (buf.length < offset + RECORD_HEADER) return INCOMPLETE
    if (buf[offset] !== CONTENT_HANDSHAKE || buf[offset + 1] !== 3) {
      // The first record was already checked; anything else interleaved mid-hello is wrong.
      return fail('malformed')
    }
    const length = buf.readUInt16BE(offset + 3)
    if (length === 0 || length > MAX_RECORD_FRAGMENT) return fail('malformed')
    if (++records > MAX_CLIENT_HELLO_RECORDS) return fail('too_large')
    const start = offset + RECORD_HEADER
    const available = Math.min(length, buf.length - start)
    // Look at the handshake header as early as possible so junk is rejected without waiting.
    const fragment = buf.subarray(start, start + available)
    if (assembled === 0 && available > 0 && fragment[0] !== HANDSHAKE_CLIENT_HELLO) {
      return fail('not_client_hello')
    }
    if (needed < 0) {
      const head = headerBytes(fragments, fragment, assembled)
      if (head !== undefined) {
        const bodyLength = ((head[1] ?? 0) << 16) | ((head[2] ?? 0) << 8) | (head[3] ?? 0)
        if (bodyLength > MAX_CLIENT_HELLO_LENGTH) return fail('too_large')
        needed = HANDSHAKE_HEADER + bodyLength
      }
    }
    // The whole ClientHello must end exactly at a record boundary: nothing may follow it in
    // the handshake stream of this flight (TLS 1.3 early data uses its own record type).
    if (needed >= 0 && assembled + length > needed) return fail('malformed')
    if (available < length) return INCOMPLETE
    fragments.push(fragment)
    assembled += length
    offset = start + length
  }
  const message = fragments.length === 1 ? (fragments[0] as Buffer) : Buffer.concat(fragments, assembled)
  return parseBody(message.subarray(HANDSHAKE_HEADER, needed))
}

/** The first 4 handshake bytes, if the fragments so far plus `next` contain them. */
function headerBytes (fragments: Buffer[], next: Buffer, assembled: number): Buffer | undefined {
  if (assembled + next.length < HANDSHAKE_HEADER) return undefined
  if (fragments.length === 0) return next.subarray(0, HANDSHAKE_HEADER)
  return Buffer.concat([...fragments, next]).subarray(0, HANDSHAKE_HEADER)
}

/** Bounds-checked cursor over one ClientHello body. */
class Reader {
  pos = 0
  constructor (readonly buf: Buffer, readonly end: number = buf.length) {}
  get remaining (): number { return this.end - this.pos }
  u8 (): number | undefined {
    if (this.remaining < 1) return undefined
    return this.buf[this.pos++]
  }

  u16 (): number | undefined {
    if (this.remaining < 2) return undefined
    const value = this.buf.readUInt16BE(this.pos)
    this.pos += 2
    return value
  }

  bytes (length: number): Buffer | undefined {
    if (length < 0 || this.remaining < length) return undefined
    const out = this.buf.subarray(this.pos, this.pos + length)
    this.pos += length
    return out
  }

  /** A vector with a 1- or 2-byte length prefix. */
  vector (prefix: 1 | 2): Buffer | undefined {
    const length = prefix === 1 ? this.u8() : this.u16()
    return length === undefined ? undefined : this.bytes(length)
  }
}

const MALFORMED = 'malformed' as const

function parseBody (body: Buffer): ClientHelloResult {
  const r = new Reader(body)
  const legacyVersion = r.u16()
  if (legacyVersion === undefined || r.bytes(32) === undefined) return fail(MALFORMED)
  const sessionId = r.vector(1)
  if (sessionId === undefined || sessionId.length > 32) return fail(MALFORMED)
  const ciphers = r.vector(2)
  if (ciphers === undefined || ciphers.length < 2 || ciphers.length % 2 !== 0) return fail(MALFORMED)
  const compression = r.vector(1)
  if (compression === undefined || compression.length < 1) return fail(MALFORMED)

  const hello: ClientHelloInfo = {
    legacyVersion,
    supportedVersions: [],
    offersTls13: false,
    sessionId: Buffer.from(sessionId),
    sessionTicketExtPresent: false,
    pskIdentities: []
  }
  if (r.remaining === 0) return { status: 'ok', hello } // pre-extension hello (SSLv3-era)

  const extensions = r.vector(2)
  if (extensions === undefined || r.remaining !== 0) return fail(MALFORMED)
  const ext = new Reader(extensions)
  const seen = new Set<number>()
  while (ext.remaining > 0) {
    const type = ext.u16()
    const data = type === undefined ? undefined : ext.vector(2)
    if (type === undefined || data === undefined) return fail(MALFORMED)
    if (seen.has(type)) return fail(MALFORMED) // RFC 8446 §4.2: at most one of each
    seen.add(type)
    let ok = true
    switch (type) {
      case EXT_SERVER_NAME: ok = readServerName(data, hello); break
      case EXT_SUPPORTED_VERSIONS: ok = readSupportedVersions(data, hello); break
      case EXT_SESSION_TICKET:
        hello.sessionTicketExtPresent = true
        if (data.length > 0) hello.sessionTicket = Buffer.from(data)
        break
      case EXT_PRE_SHARED_KEY: ok = readPreSharedKey(data, hello); break
    }
    if (!ok) return fail(MALFORMED)
  }

  hello.offersTls13 = hello.supportedVersions.includes(TLS13)
  const psk = hello.pskIdentities[0]
  if (psk !== undefined && psk.length >= TICKET_KEY_NAME_LENGTH) {
    hello.ticketKeyName = Buffer.from(psk.subarray(0, TICKET_KEY_NAME_LENGTH))
  } else if (hello.sessionTicket !== undefined && hello.sessionTicket.length >= TICKET_KEY_NAME_LENGTH) {
    hello.ticketKeyName = Buffer.from(hello.sessionTicket.subarray(0, TICKET_KEY_NAME_LENGTH))
  }
  return { status: 'ok', hello }
}

// Letters, digits, '-', '_' (seen in the wild) and dots; no empty labels except a trailing dot.
const HOST_NAME = /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?$/

/** RFC 6066 §3: ServerNameList<1..2^16-1> of { name_type(1), HostName<1..2^16-1> }. */
function readServerName (data: Buffer, hello: ClientHelloInfo): boolean {
  const outer = new Reader(data)
  const list = outer.vector(2)
  if (list === undefined || outer.remaining !== 0 || list.length === 0) return false
  const r = new Reader(list)
  while (r.remaining > 0) {
    const nameType = r.u8()
    const name = nameType === undefined ? undefined : r.vector(2)
    if (nameType === undefined || name === undefined || name.length === 0) return false
    if (nameType === 0 && hello.serverName === undefined && name.length <= 253) {
      const text = name.toString('latin1').toLowerCase()
      // A name we could not match a certificate against is simply not reported.
      if (HOST_NAME.test(text)) hello.serverName = text
    }
  }
  return true
}

/** RFC 8446 §4.2.1: ProtocolVersion versions<2..254> in the ClientHello. */
function readSupportedVersions (data: Buffer, hello: ClientHelloInfo): boolean {
  const outer = new Reader(data)
  const list = outer.vector(1)
  if (list === undefined || outer.remaining !== 0 || list.length < 2 || list.length % 2 !== 0) return false
  for (let i = 0; i < list.length; i += 2) hello.supportedVersions.push(list.readUInt16BE(i))
  return true
}

/**
 * RFC 8446 §4.2.11: identities<7..2^16-1> of { identity<1..2^16-1>, obfuscated_ticket_age(4) },
 * then binders<33..2^16-1> of PskBinderEntry<32..255>.
 */
function readPreSharedKey (data: Buffer, hello: ClientHelloInfo): boolean {
  const outer = new Reader(data)
  const identities = outer.vector(2)
  const binders = outer.vector(2)
  if (identities === undefined || binders === undefined || outer.remaining !== 0) return false
  if (identities.length < 7 || binders.length < 33) return false
  const ids = new Reader(identities)
  const found: Buffer[] = []
  while (ids.remaining > 0) {
    const identity = ids.vector(2)
    if (identity === undefined || identity.length === 0 || ids.bytes(4) === undefined) return false
    found.push(Buffer.from(identity))
  }
  const bs = new Reader(binders)
  let binderCount = 0
  while (bs.remaining > 0) {
    const binder = bs.vector(1)
    if (binder === undefined || binder.length < 32) return false
    binderCount++
  }
  if (binderCount !== found.length) return false
  hello.pskIdentities = found
  return true
}
