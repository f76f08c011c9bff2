import crypto from 'node:crypto'
import { COOKIE_MAC_BYTES, NODE_ID_BYTES, type SnapshotCookie } from './wire-v2.js'

/**
 * Who gets a snapshot (a node's whole L2, kilobytes to megabytes) — the one reply of the farm
 * sync that is much bigger than the datagram asking for it. Like DTLS's HelloVerifyRequest or
 * QUIC's Retry, the first request from an address only earns a challenge the same size as
 * itself, holding a cookie: a MAC, under a key this process drew at random, over the requester's
 * address and port, its node id, the request id and the time. The snapshot goes only to a
 * request that echoes a valid cookie, i.e. from an address that received our challenge: a
 * request with a forged source address brings its victim one datagram no bigger than the
 * request, never session data. Verified requesters are then limited per address (a token
 * bucket) and in number at once.
 *
 *   decide (request, from): { action: 'challenge', cookie } | { action: 'answer' }
 *                         | { action: 'refuse', reason: 'bad_cookie' | 'rate_limited' }
 *   release ()            an answered snapshot has been sent (frees its place)
 *
 * Cookies die with the process (the key is not saved) and after `cookieLifetimeMs`.
 */
export interface SnapshotRequester {
  address: string
  port: number
  /** The request's sender, as its authenticated header names it (8 bytes, hex). */
  nodeId: string
}

export type GateDecision =
  | { action: 'challenge'; cookie: SnapshotCookie }
  | { action: 'answer' }
  | { action: 'refuse'; reason: SnapshotRefusal }

export type SnapshotRefusal = 'bad_cookie' | 'rate_limited'

export interface SnapshotGateOptions {
  now?: () => number
  /** How long a cookie stays valid (ms). */
  cookieLifetimeMs?: number
  /** Snapshots an address may have in a burst, and the ms it takes to earn one more. */
  burst?: number
  refillMs?: number
  /** Snapshots being sent at once, to anyone. */
  maxConcurrent?: number
  /** Addresses whose buckets are remembered (the oldest goes first). */
  maxTracked?: number
}

interface Bucket { tokens: number; atMs: number }

export class SnapshotGate {
  private readonly key = crypto.randomBytes(32)
  private readonly now: () => number
  private readonly cookieLifetimeS: number
  private readonly burst: number
  private readonly refillMs: number
  private readonly maxConcurrent: number
  private readonly maxTracked: number
  private readonly buckets = new Map<string, Bucket>()
  private inFlight = 0

  constructor (opts: SnapshotGateOptions = {}) {
    this.now = opts.now ?? Date.now
    this.cookieLifetimeS = Math.ceil((opts.cookieLifetimeMs ?? 10_000) / 1000)
    this.burst = opts.burst ?? 4
    this.refillMs = opts.refillMs ?? 5000
    this.maxConcurrent = opts.maxConcurrent ?? 4
    this.maxTracked = opts.maxTracked ?? 1024
  }

  decide (request: { requestId: number; cookie?: SnapshotCookie }, from: SnapshotRequester): GateDecision {
    const nowS = Math.floor(this.now() / 1000)
    if (request.cookie === undefined) return { action: 'challenge', cookie: { issuedAt: nowS, mac: this.mac(from, request.requestId, nowS) } }
    const { issuedAt, mac } = request.cookie
    const fresh = issuedAt <= nowS && nowS - issuedAt <= this.cookieLifetimeS
    if (!fresh || mac.length !== COOKIE_MAC_BYTES || !crypto.timingSafeEqual(mac, this.mac(from, request.requestId, issuedAt))) {
      return { action: 'refuse', reason: 'bad_cookie' }
    }
    if (this.inFlight >= this.maxConcurrent || !this.takeToken(withoutScope(from.address))) return { action: 'refuse', reason: 'rate_limited' }
    this.inFlight++
    return { action: 'answer' }
  }

  release (): void {
    if (this.inFlight > 0) this.inFlight--
  }

  private mac (from: SnapshotRequester, requestId: number, issuedAt: number): Buffer {
    const address = Buffer.from(withoutScope(from.address), 'utf8')
    const fixed = Buffer.alloc(2 + NODE_ID_BYTES + 4 + 4)
    fixed.writeUInt16BE(from.port, 0)
    Buffer.from(from.nodeId, 'hex').copy(fixed, 2, 0, NODE_ID_BYTES)
    fixed.writeUInt32BE(requestId, 2 + NODE_ID_BYTES)
    fixed.writeUInt32BE(issuedAt, 2 + NODE_ID_BYTES + 4)
    const hmac = crypto.createHmac('sha256', this.key)
    hmac.update('tlsfleet snapshot cookie v1')
    hmac.update(Buffer.from([address.length & 0xff]))
    hmac.update(address)
    hmac.update(fixed)
    return hmac.digest().subarray(0, COOKIE_MAC_BYTES)
  }

  private takeToken (address: string): boolean {
    const nowMs = this.now()
    let bucket = this.buckets.get(address)
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxTracked) this.buckets.delete(this.buckets.keys().next().value as string)
      bucket = { tokens: this.burst, atMs: nowMs }
      this.buckets.set(address, bucket)
    }
    bucket.tokens = Math.min(this.burst, bucket.tokens + Math.max(0, nowMs - bucket.atMs) / this.refillMs)
    bucket.atMs = nowMs
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }
}

/**
 * An IPv6 link-local address names its interface (`fe80::1%eth0`) as the receiving socket saw
 * it, which can differ between the group socket and the snapshot socket of one node when both
 * nodes sit on one host. The cookie still proves the challenge reached that address.
 */
function withoutScope (address: string): string {
  const percent = address.indexOf('%')
  return percent < 0 ? address : address.slice(0, percent)
}
