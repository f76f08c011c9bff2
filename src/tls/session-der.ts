/**
 * Reads the protocol version out of a DER-encoded SSL_SESSION (OpenSSL's ASN.1 layout:
 * SEQUENCE { version INTEGER, sslVersion INTEGER, ... }) without a full ASN.1 parser. Used to
 * keep TLS 1.3 sessions out of the session-ID cache: 1.3 clients never resume by session ID.
 * Returns undefined for anything that does not look like that layout.
 */
export function sessionProtocolVersion (der: Buffer): number | undefined {
  if (der.length < 8 || der[0] !== 0x30) return undefined
  let offset = 1
  const lenByte = der[offset++] as number
  if (lenByte & 0x80) {
    const n = lenByte & 0x7f
    if (n === 0 || n > 3) return undefined
    offset += n
  }
  // version INTEGER (1 byte, value 1)
  if (der[offset] !== 0x02 || der[offset + 1] !== 0x01) return undefined
  offset += 3
  // sslVersion INTEGER (1-3 bytes)
  if (der[offset] !== 0x02) return undefined
  const n = der[offset + 1] as number
  if (n < 1 || n > 3 || offset + 2 + n > der.length) return undefined
  let version = 0
  for (let i = 0; i < n; i++) version = (version << 8) | (der[offset + 2 + i] as number)
  return version
}

export const TLS1_3_VERSION = 0x0304

/** One DER element at `offset`: its tag, where its content starts and ends; undefined when it does not fit. */
function element (der: Buffer, offset: number, end: number): { tag: number; start: number; end: number } | undefined {
  if (offset + 2 > end) return undefined
  const tag = der[offset] as number
  let length = der[offset + 1] as number
  let start = offset + 2
  if (length & 0x80) {
    const n = length & 0x7f
    if (n === 0 || n > 3 || start + n > end) return undefined
    length = 0
    for (let i = 0; i < n; i++) length = length * 256 + (der[start + i] as number)
    start += n
  }
  return start + length <= end ? { tag, start, end: start + length } : undefined
}

/** OpenSSL's tags in SSL_SESSION_ASN1: `[1]` time, `[2]` timeout, `[4]` session_id_context (EXPLICIT). */
const TIME_TAG = 0xa1
const TIMEOUT_TAG = 0xa2
const SESSION_ID_CONTEXT_TAG = 0xa4
/** d2i_SSL_SESSION's own bounds: a 2-byte cipher ID, SSL3_MAX_SSL_SESSION_ID_LENGTH, TLS13_MAX_RESUMPTION_PSK_LENGTH. */
const CIPHER_ID_BYTES = 2
const MAX_SESSION_ID_BYTES = 32
const MAX_MASTER_KEY_BYTES = 64
/** What d2i_SSL_SESSION takes when a session has no timeout (OpenSSL's ssl_asn1.c). */
const DEFAULT_TIMEOUT_SECONDS = 3

type Element = NonNullable<ReturnType<typeof element>>

/**
 * The top-level fields of a whole DER SSL_SESSION, by tag, or undefined when it is not one as
 * d2i_SSL_SESSION reads it: garbage (an empty SEQUENCE, bytes after it), or required fields
 * missing or out of OpenSSL's bounds.
 */
function sessionFields (der: Buffer): Map<number, Element> | undefined {
  const session = element(der, 0, der.length)
  if (session === undefined || session.tag !== 0x30 || session.end !== der.length || sessionProtocolVersion(der) === undefined) return undefined
  const fields = new Map<number, Element>()
  const required: Element[] = []
  for (let offset = session.start; offset < session.end;) {
    const field = element(der, offset, session.end)
    if (field === undefined) return undefined
    // version, sslVersion, cipher, session_id, master_key: untagged, in that order.
    if (field.tag === 0x02 || field.tag === 0x04) required.push(field)
    else fields.set(field.tag, field)
    offset = field.end
  }
  const [, , cipher, id, masterKey] = required
  if (required.length !== 5 || cipher?.tag !== 0x04 || id?.tag !== 0x04 || masterKey?.tag !== 0x04) return undefined
  if (cipher.end - cipher.start !== CIPHER_ID_BYTES || id.end - id.start > MAX_SESSION_ID_BYTES || masterKey.end - masterKey.start > MAX_MASTER_KEY_BYTES) return undefined
  return fields
}

/** The INTEGER inside an EXPLICIT field, when it is one of at most 6 bytes and not negative. */
function explicitInteger (der: Buffer, field: Element): number | undefined {
  const value = element(der, field.start, field.end)
  if (value?.tag !== 0x02 || value.end - value.start > 6 || value.start === value.end || ((der[value.start] as number) & 0x80) !== 0) return undefined
  return der.readUIntBE(value.start, value.end - value.start)
}

/** What refusing an offered session needs to know of it, read in one pass over its fields. */
export interface SessionView {
  /**
   * The session-ID context it was made under (empty when it has none), undefined when that
   * field is malformed. OpenSSL resumes a session only under the same context, so a session
   * refused for another context is no bad session: the node that made it is set up
   * differently (--session-id-context, --client-verify, --client-ca).
   */
  sessionIdContext: Buffer | undefined
  /**
   * Whether it is past its own end (its time plus its timeout, as OpenSSL's sess_timedout
   * judges it) at the `nowSeconds` given; undefined when those fields are malformed. A session
   * without a time or timeout reads as d2i_SSL_SESSION makes it: made now, 3 s of life.
   */
  expired: boolean | undefined
}

/**
 * A DER SSL_SESSION's context and expiry, or undefined when it is not a whole session as
 * d2i_SSL_SESSION reads it: garbage has no context, so it is dropped as bad, not taken for a
 * session made elsewhere.
 */
export function readSession (der: Buffer, nowSeconds: number): SessionView | undefined {
  const fields = sessionFields(der)
  if (fields === undefined) return undefined
  return { sessionIdContext: sessionIdContext(der, fields.get(SESSION_ID_CONTEXT_TAG)), expired: expired(der, fields, nowSeconds) }
}

function sessionIdContext (der: Buffer, field: Element | undefined): Buffer | undefined {
  if (field === undefined) return Buffer.alloc(0)
  const value = element(der, field.start, field.end)
  return value?.tag === 0x04 ? der.subarray(value.start, value.end) : undefined
}

function expired (der: Buffer, fields: Map<number, Element>, nowSeconds: number): boolean | undefined {
  const time = fields.get(TIME_TAG)
  const timeout = fields.get(TIMEOUT_TAG)
  const made = time !== undefined ? explicitInteger(der, time) : nowSeconds
  const life = timeout !== undefined ? explicitInteger(der, timeout) : DEFAULT_TIMEOUT_SECONDS
  if (made === undefined || life === undefined) return undefined
  return nowSeconds - made > life
}

/**
 * Whether `der` is an SSL_SESSION as d2i_SSL_SESSION reads its start (one SEQUENCE filling the
 * bytes; version, protocol version, cipher, session ID and master key, in OpenSSL's bounds) whose
 * session ID is `id`: what a worker's New must be, as OpenSSL made it for that ID. The primary
 * checks it before L2 keeps a session and the sync seals it for the peers: bytes that are no
 * session, or a session filed under another's ID, go no further. Reads only those five fields:
 * it runs once per new session.
 */
export function isSessionWithId (der: Buffer, id: Buffer): boolean {
  // No element objects: a walk of offsets (this runs in the primary for every New).
  if (der[0] !== 0x30) return false
  let at = contentStart(der, 0, der.length)
  if (at < 0 || lengthEnd !== der.length) return false
  const end = der.length
  // version, sslVersion: INTEGERs.
  for (let i = 0; i < 2; i++) {
    if (der[at] !== 0x02 || (at = contentStart(der, at, end)) < 0) return false
    at = lengthEnd
  }
  // cipher: 2 bytes.
  if (der[at] !== 0x04 || (at = contentStart(der, at, end)) < 0 || lengthEnd - at !== CIPHER_ID_BYTES) return false
  at = lengthEnd
  if (der[at] !== 0x04 || (at = contentStart(der, at, end)) < 0 || lengthEnd - at !== id.length || der.compare(id, 0, id.length, at, lengthEnd) !== 0) return false
  at = lengthEnd
  return der[at] === 0x04 && (at = contentStart(der, at, end)) >= 0 && lengthEnd - at <= MAX_MASTER_KEY_BYTES
}

/** Where the element at `offset` ends: set by contentStart. */
let lengthEnd = 0

/** Where the content of the element at `offset` starts (-1 when it does not fit in `end`); its end in lengthEnd. */
function contentStart (der: Buffer, offset: number, end: number): number {
  if (offset + 2 > end) return -1
  let length = der[offset + 1] as number
  let start = offset + 2
  if (length & 0x80) {
    const n = length & 0x7f
    if (n === 0 || n > 3 || start + n > end) return -1
    length = 0
    for (let i = 0; i < n; i++) length = length * 256 + (der[start + i] as number)
    start += n
  }
  if (start + length > end) return -1
  lengthEnd = start + length
  return start
}
