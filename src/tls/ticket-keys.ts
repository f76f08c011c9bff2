import crypto from 'node:crypto'

/**
 * Farm-wide TLS session ticket keys, derived from the farm secret and the time epoch so that
 * every node computes the same keys without a coordinator.
 *
 * Node's `ticketKeys` (48 bytes) is   name(16) | HMAC secret(16) | AES-128 key(16)
 * and OpenSSL puts the 16-byte name first in every ticket it issues (TLS 1.2 session_ticket and
 * TLS 1.3 PSK identity alike), so a worker can read it from the ClientHello.
 *
 * Our layout of one generation (epoch = floor(unix seconds / rotationSeconds)):
 *   name   = tag(8) | epoch as uint64 big-endian(8)
 *            tag  = HKDF-SHA256(secret, salt = '', info = 'tlsfleet ticket name tag', 8)
 *   secret = HKDF-SHA256(secret, salt = '', info = 'tlsfleet tls ticket key v1' | epoch BE(8), 32)
 *            HMAC secret = secret[0..16), AES key = secret[16..32)
 *   keys   = name | HMAC secret | AES key
 * The tag makes names recognisably ours (and differs per farm secret); the clear epoch lets a
 * node map any presented name to its generation in O(1) and derive the key on demand. The
 * name reveals only the farm tag and the issue epoch, which the ticket shows anyway by timing.
 *
 * Derived where the secret is: a node's primary, the HAProxy companion, `tlsfleet haproxy-keys`.
 * Workers never hold the secret; they get the keys of the acceptable epochs (ticket-key-ring.ts).
 */
export const TICKET_KEY_LENGTH = 48
const TICKET_KEY_NAME_LENGTH = 16
const TAG_LENGTH = 8
const TICKET_IV_LENGTH = 16
const TICKET_MAC_LENGTH = 32
const MIN_SECRET_LENGTH = 16
const KEY_INFO = 'tlsfleet tls ticket key v1'
const TAG_INFO = 'tlsfleet ticket name tag'
/** Generations kept in memory; the acceptable window is normally a handful. */
const CACHE_LIMIT = 64

export interface TicketKeyGeneration {
  epoch: number
  /** 48 bytes, Node `ticketKeys` format */
  keys: Buffer
  /** 16 bytes, the first 16 bytes of `keys` */
  name: Buffer
}

export interface TicketKeyScheduleOptions {
  secret: Buffer
  rotationSeconds: number
  lifetimeSeconds: number
  /** clock in milliseconds; defaults to Date.now */
  now?: () => number
}

function hkdf (secret: Buffer, info: Buffer | string, length: number): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', secret, Buffer.alloc(0), info, length))
}

function epochBytes (epoch: number): Buffer {
  const out = Buffer.alloc(8)
  out.writeBigUInt64BE(BigInt(epoch))
  return out
}

export class TicketKeySchedule {
  readonly rotationSeconds: number
  readonly lifetimeSeconds: number
  readonly #secret: Buffer
  readonly #tag: Buffer
  readonly #now: () => number
  readonly #cache = new Map<number, TicketKeyGeneration>()

  constructor (opts: TicketKeyScheduleOptions) {
    if (!Buffer.isBuffer(opts.secret) || opts.secret.length < MIN_SECRET_LENGTH) {
      throw new RangeError(`ticket key secret must be at least ${MIN_SECRET_LENGTH} bytes`)
    }
    if (!Number.isSafeInteger(opts.rotationSeconds) || opts.rotationSeconds <= 0) {
      throw new RangeError(`rotationSeconds must be a positive integer, got ${String(opts.rotationSeconds)}`)
    }
    if (!Number.isSafeInteger(opts.lifetimeSeconds) || opts.lifetimeSeconds < 0) {
      throw new RangeError(`lifetimeSeconds must be a non-negative integer, got ${String(opts.lifetimeSeconds)}`)
    }
    this.rotationSeconds = opts.rotationSeconds
    this.lifetimeSeconds = opts.lifetimeSeconds
    this.#secret = Buffer.from(opts.secret) // private copy: the caller may zero or reuse theirs
    this.#tag = hkdf(this.#secret, TAG_INFO, TAG_LENGTH)
    this.#now = opts.now ?? Date.now
  }

  /** The 8-byte farm tag every name of this schedule starts with. */
  get tag (): Buffer {
    return Buffer.from(this.#tag)
  }

  epochAt (ms: number): number {
    return Math.max(0, Math.floor(ms / 1000 / this.rotationSeconds))
  }

  /** Start of `epoch`, in ms since the Unix epoch. */
  epochStartMs (epoch: number): number {
    return epoch * this.rotationSeconds * 1000
  }

  /** Keys of one epoch: pure (same secret and epoch give the same keys on every node), cached. */
  generation (epoch: number): TicketKeyGeneration {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`invalid ticket key epoch ${String(epoch)}`)
    const cached = this.#cache.get(epoch)
    if (cached !== undefined) return cached
    const eb = epochBytes(epoch)
    const name = Buffer.concat([this.#tag, eb])
    const secret = hkdf(this.#secret, Buffer.concat([Buffer.from(KEY_INFO, 'latin1'), eb]), 32)
    const generation: TicketKeyGeneration = { epoch, keys: Buffer.concat([name, secret]), name }
    if (this.#cache.size >= CACHE_LIMIT) {
      // Evict the oldest-inserted entry; in normal use entries arrive in epoch order.
      const oldest = this.#cache.keys().next()
      if (oldest.done !== true) this.#cache.delete(oldest.value)
    }
    this.#cache.set(epoch, generation)
    return generation
  }

  current (): TicketKeyGeneration {
    return this.generation(this.epochAt(this.#now()))
  }

  /**
   * Whether tickets named for `epoch` may be accepted at `nowMs`: the current epoch, the next one
   * (a peer whose clock runs a little ahead may already issue it), and earlier ones while a
   * ticket issued at their very end is still within its lifetime.
   */
  isAcceptable (epoch: number, nowMs: number = this.#now()): boolean {
    if (!Number.isSafeInteger(epoch) || epoch < 0) return false
    const current = this.epochAt(nowMs)
    if (epoch === current || epoch === current + 1) return true
    if (epoch > current) return false
    return nowMs - this.epochStartMs(epoch + 1) < this.lifetimeSeconds * 1000
  }

  /**
   * Until when (ms) tickets named for `epoch` stay acceptable, once they are: the end of their
   * epoch plus the session lifetime (see isAcceptable). Lets a caller cache a lookup.
   */
  acceptableUntilMs (epoch: number): number {
    return this.epochStartMs(epoch + 1) + this.lifetimeSeconds * 1000
  }

  /** Generations whose tickets may still be valid now, newest first: next, current, previous... */
  acceptable (): TicketKeyGeneration[] {
    const now = this.#now()
    const current = this.epochAt(now)
    const out = [this.generation(current + 1), this.generation(current)]
    // Bounded by lifetime / rotation + 1 steps.
    for (let epoch = current - 1; epoch >= 0 && this.isAcceptable(epoch, now); epoch--) {
      out.push(this.generation(epoch))
    }
    return out
  }

  /** Map a ticket key name to its generation if it is ours and acceptable now; O(1). */
  byName (name: Buffer): TicketKeyGeneration | undefined {
    if (!Buffer.isBuffer(name) || name.length !== TICKET_KEY_NAME_LENGTH) return undefined
    if (!name.subarray(0, TAG_LENGTH).equals(this.#tag)) return undefined
    const big = name.readBigUInt64BE(TAG_LENGTH)
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) return undefined
    const epoch = Number(big)
    if (!this.isAcceptable(epoch)) return undefined
    return this.generation(epoch)
  }

  /**
   * Whether `ticket` was made under `generation`, by its HMAC, before any context is built for
   * it: the name is no proof (its tag is in every ticket, its epoch is a counter), so a forged
   * name with an acceptable epoch would otherwise make a worker build that generation's contexts.
   * OpenSSL lays a ticket out, under Node's ticketKeys (TLS 1.2 session_ticket and TLS 1.3 PSK
   * identity alike), as name(16) | IV(16) | AES-128-CBC ciphertext | HMAC-SHA256(32) over all
   * before it, keyed by the 16-byte HMAC secret; it refuses one with no ciphertext.
   */
  static macValid (generation: TicketKeyGeneration, ticket: Buffer): boolean {
    if (ticket.length <= TICKET_KEY_NAME_LENGTH + TICKET_IV_LENGTH + TICKET_MAC_LENGTH) return false
    const macAt = ticket.length - TICKET_MAC_LENGTH
    const hmacKey = generation.keys.subarray(TICKET_KEY_NAME_LENGTH, TICKET_KEY_NAME_LENGTH + 16)
    const mac = crypto.createHmac('sha256', hmacKey).update(ticket.subarray(0, macAt)).digest()
    return crypto.timingSafeEqual(mac, ticket.subarray(macAt))
  }

  msUntilNextRotation (): number {
    const now = this.#now()
    return this.epochStartMs(this.epochAt(now) + 1) - now
  }
}
