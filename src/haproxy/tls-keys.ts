import { TICKET_KEY_LENGTH, type TicketKeySchedule } from '../tls/ticket-keys.js'

/**
 * HAProxy's side of the farm ticket keys: the same generations tlsfleet's workers use
 * (src/tls/ticket-keys.ts), written the way HAProxy reads them.
 *
 * One 48-byte key is   Node `ticketKeys`: name(16) | HMAC(16) | AES(16)
 *                      HAProxy key line: name(16) | AES(16)  | HMAC(16)
 * so the two 16-byte halves after the name swap. (Checked both ways with HAProxy 2.6: with the
 * halves left as Node has them, no ticket resumes on the other side.)
 *
 * HAProxy keeps a ring of 3 keys per `tls-ticket-keys` file: `show tls-keys FILE` lists it
 * oldest first, the middle key encrypts and all three decrypt; `set ssl tls-key FILE KEY`
 * drops the oldest, appends KEY and moves encryption to the next one. So the ring of epoch E
 * is [E-1, E, E+1]: the previous key still decrypts, the current one encrypts, and the next
 * one already decrypts tickets from a peer whose clock runs a little ahead.
 */
export const HAPROXY_RING_SIZE = 3
const NAME = 16
const HALF = 16

/** A 48-byte Node `ticketKeys` buffer as HAProxy's base64 key line. */
export function haproxyKeyLine (nodeKeys: Buffer): string {
  if (nodeKeys.length !== TICKET_KEY_LENGTH) throw new RangeError(`a ticket key must be ${TICKET_KEY_LENGTH} bytes, got ${nodeKeys.length}`)
  const name = nodeKeys.subarray(0, NAME)
  const hmac = nodeKeys.subarray(NAME, NAME + HALF)
  const aes = nodeKeys.subarray(NAME + HALF)
  return Buffer.concat([name, aes, hmac]).toString('base64')
}

/** The inverse: HAProxy's base64 key line as Node `ticketKeys` (48-byte lines only). */
export function nodeKeysFromLine (line: string): Buffer {
  const raw = Buffer.from(line, 'base64')
  if (raw.length !== TICKET_KEY_LENGTH) throw new RangeError(`expected a ${TICKET_KEY_LENGTH}-byte key line, got ${raw.length} bytes`)
  return Buffer.concat([raw.subarray(0, NAME), raw.subarray(NAME + HALF), raw.subarray(NAME, NAME + HALF)])
}

export interface ExpectedRing {
  /** Epoch of the encrypting (middle) key. */
  epoch: number
  /** HAProxy key lines, oldest first: epochs E-1, E, E+1. */
  lines: string[]
}

/** The ring every HAProxy of the farm should hold at `nowMs`. */
export function expectedRing (schedule: TicketKeySchedule, nowMs: number): ExpectedRing {
  const epoch = Math.max(1, schedule.epochAt(nowMs))
  return { epoch, lines: [epoch - 1, epoch, epoch + 1].map((e) => haproxyKeyLine(schedule.generation(e).keys)) }
}

/**
 * How many `set ssl tls-key` pushes bring `actual` to `expected`: k such that the ring minus its
 * k oldest keys is the start of the expected one (then push its last k keys, in order).
 * 0 = already current, 1 = one rotation behind, 3 = nothing in common (a restarted HAProxy with
 * an old key file, or keys from elsewhere).
 */
export function pushesNeeded (actual: readonly string[], expected: readonly string[]): number {
  for (let k = 0; k < HAPROXY_RING_SIZE; k++) {
    const kept = actual.slice(k)
    if (actual.length === expected.length && kept.every((line, i) => line === expected[i])) return k
  }
  return HAPROXY_RING_SIZE
}

/** The text of a `tls-ticket-keys` file holding `ring` (the middle line encrypts). */
export function keyFileText (ring: ExpectedRing): string {
  return ring.lines.join('\n') + '\n'
}

export interface TlsKeyRef { id: number; file: string }

/**
 * `show tls-keys` (no argument): one line per ring, `0 (/path/keyfile)`; a bind line without a
 * file gets a ring too, shown as `1 (<TLS ticket keys>)`-like text on some versions, which no
 * file path matches. Empty when no bind line uses tickets keys at all.
 */
export function parseTlsKeyRefs (text: string): TlsKeyRef[] {
  const refs: TlsKeyRef[] = []
  for (const line of text.split('\n')) {
    const match = /^(\d+) \((.*)\)\s*$/.exec(line.trim())
    if (match !== null) refs.push({ id: Number(match[1]), file: match[2] as string })
  }
  return refs
}

/**
 * `show tls-keys FILE`: `# id secret`, `# 0 (FILE)`, then `0.0 <base64>` ... oldest first.
 * Returns the base64 keys in ring order. Throws without quoting the text (it holds keys).
 */
export function parseTlsKeys (text: string): string[] {
  const keys: Array<{ index: number; key: string }> = []
  for (const line of text.split('\n')) {
    const match = /^\d+\.(\d+) ([A-Za-z0-9+/=]+)\s*$/.exec(line.trim())
    if (match !== null) keys.push({ index: Number(match[1]), key: match[2] as string })
  }
  if (keys.length === 0) throw new Error('show tls-keys: no key lines in the answer')
  return keys.sort((a, b) => a.index - b.index).map((k) => k.key)
}

/** Byte length of a base64 key line (48: AES-128 keys, 80: AES-256). */
export function keyLineBytes (line: string): number {
  return Buffer.from(line, 'base64').length
}
