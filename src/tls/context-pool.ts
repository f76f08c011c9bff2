import crypto from 'node:crypto'
import { DEFAULT_SESSION_ID_CONTEXT, sessionIdContextFor, type ClientVerify } from './client-auth.js'
import { TICKET_KEY_NAME_LENGTH, type ClientHelloInfo } from './client-hello.js'
import type { CertificateChoice } from './certificate-choice.js'
import { buildSniRouter, type ContextOptions } from './secure-contexts.js'
import { servedEntries, type Bind, type ServedEntry } from './line-binds.js'
import type { SniRouter } from './sni-router.js'
import { TicketKeyRing, type TicketKeySet } from './ticket-key-ring.js'
import { TICKET_KEY_LENGTH, TicketKeySchedule, type TicketKeyGeneration } from './ticket-keys.js'
import type { TlsMaterial } from './tls-material.js'
import type { TlsPolicy } from './tls-policy.js'

export interface ContextPoolOptions {
  /**
   * --session-id-context as given, the same for every certificate; '' (not given): each
   * certificate choice gets its own (secure-contexts.ts choiceSessionIdContext). Either way
   * the one contexts carry also depends on client verification.
   */
  sessionIdContext: string
  sessionTimeoutSeconds: number
  policy: TlsPolicy
  clientVerify: ClientVerify
  /** --alpn (a crt-list line's own alpn replaces it for its names). */
  alpn?: string[]
  /** --session-tickets on; off: every context sets SSL_OP_NO_TICKET. */
  sessionTickets: boolean
  /** The keys the primary sent with the settings (ticket-key-ring.ts); later ones come to setTicketKeys. */
  ticketKeys: TicketKeySet
  ticketRotationSeconds: number
  /** Where key problems are said: a set refused, keys missing (the primary late). */
  log?: KeyLog
}

/** The part of the worker's logger the pool speaks through. */
export interface KeyLog {
  warn: (fields: Record<string, unknown>, message: string) => void
  error: (fields: Record<string, unknown>, message: string) => void
}

/**
 * The secure contexts a worker hands out, one SNI router per ticket-key generation.
 *
 * Node keeps one ticket key per context, so accepting a ticket issued under the previous key
 * after a rotation means choosing the context per connection. The ClientHello was already
 * peeked: the first 16 bytes of a presented ticket (TLS 1.2) or PSK identity (TLS 1.3) are the
 * key name, which names its epoch, so the choice is a Map lookup. New clients get the current
 * generation. The keys are the primary's (ticket-key-ring.ts): a worker never holds the secret
 * they derive from. Generations are made on first use, each certificate's context in them when a
 * client first needs it (the current generation at start: all of them), and dropped once no
 * ticket under them can still be valid. A generation is made only for a ticket whose HMAC
 * checks out under it (a name alone is forged at will), and at most MAX_GENERATIONS are held:
 * with a long --session-timeout and a short --ticket-rotation thousands of epochs are
 * acceptable at once.
 */
export class ContextPool {
  private material: TlsMaterial
  private contextOptions: ContextOptions
  /** What is served, each with its settings (line-binds.ts), and the global settings. */
  private served: ServedEntry[]
  private globalBind: Bind
  /** Keys by secret and epoch, as the primary sends them; undefined: tickets off. */
  private readonly ring?: TicketKeyRing
  /** Tickets on but no key at all from the primary: this worker's own random key, until keys come. */
  private ownKeys?: Buffer
  /** The primary's keys lacked the current epoch at the last choice (said once per episode). */
  private fellBack = false
  /** By `${schedule index}:${epoch}`, oldest made first. */
  private readonly routers = new Map<string, Router>()
  /** The session-ID contexts of the current material's choices (latin1), made when first asked. */
  private knownContexts?: Set<string>
  private plain?: Router
  private lastPrune = 0
  /**
   * Per-connection shortcuts: the router for new clients until the next rotation, and the router
   * for each ticket key name seen until that name stops being acceptable. A connection then costs
   * a tag compare and one Map read instead of a Buffer view, a BigInt epoch, a key string and a
   * second Map read.
   */
  private currentRouter?: CachedRouter
  /** Per secret (the ring's order): its farm tag (a name's first 8 bytes), and routers by epoch. */
  private byTicketName: Array<{ tag: Buffer; byEpoch: Map<number, CachedRouter> }> = []

  constructor (material: TlsMaterial, private readonly opts: ContextPoolOptions, private readonly now: () => number = Date.now) {
    this.material = material
    this.contextOptions = this.optionsFor(material)
    ;({ entries: this.served, global: this.globalBind } = this.entriesFor(material))
    if (opts.sessionTickets) {
      // A ticket cannot outlive its session: OpenSSL refuses sessions older than the timeout.
      this.ring = new TicketKeyRing({ rotationSeconds: opts.ticketRotationSeconds, lifetimeSeconds: opts.sessionTimeoutSeconds })
      this.takeKeys(opts.ticketKeys)
    }
    // The current generation now, every context of it: the first handshakes do not pay for
    // them, and a context OpenSSL refuses fails the worker's start rather than a handshake.
    for (const choice of this.routerFor(undefined).values()) for (const context of choice.contexts()) context.context()
  }

  get ticketsEnabled (): boolean { return this.ring !== undefined }

  /**
   * Keys from the primary (a rotation's push): added to the ring, keys no longer acceptable
   * dropped and zeroed with their generations' routers. A malformed set is refused whole, said in
   * the log, and changes nothing. False when refused.
   */
  setTicketKeys (set: unknown): boolean {
    if (this.ring === undefined) {
      this.opts.log?.warn({}, 'ticket keys from the primary while session tickets are off: ignored')
      return false
    }
    const ok = this.takeKeys(set)
    // Re-chosen at the next connection: a worker that fell back issues under the new key at once.
    this.currentRouter = undefined
    return ok
  }

  /** Keys held now, all secrets together (tests, diagnostics). */
  get ticketKeysHeld (): number { return this.ring?.size ?? 0 }

  setMaterial (material: TlsMaterial): void {
    this.material = material
    this.contextOptions = this.optionsFor(material)
    ;({ entries: this.served, global: this.globalBind } = this.entriesFor(material))
    this.routers.clear()
    this.knownContexts = undefined
    for (const { byEpoch } of this.byTicketName) byEpoch.clear()
    this.currentRouter = undefined
    this.plain = undefined
    this.routerFor(undefined)
  }

  /** The SNI router for this connection: by the ticket's key generation when it has one. */
  routerFor (hello: ClientHelloInfo | undefined): Router {
    const ring = this.ring
    if (ring === undefined) {
      this.plain ??= buildSniRouter(this.material.certificates, this.contextOptions, this.served)
      return this.plain
    }
    const now = this.now()
    const name = hello?.ticketKeyName
    if (hello !== undefined && name !== undefined) {
      const cached = this.cachedByName(name, now)
      if (cached !== undefined) return cached
      const found = ring.byName(name, now)
      const ticket = presentedTicket(hello)
      // Forged (or corrupt): a new client for OpenSSL too, which would refuse it.
      if (found !== undefined && ticket !== undefined && TicketKeySchedule.macValid(found.generation, ticket)) {
        const router = this.router(found.schedule, found.generation)
        this.byTicketName[found.schedule]?.byEpoch.set(found.generation.epoch, { router, until: found.until })
        return router
      }
    }
    if (this.currentRouter !== undefined && now < this.currentRouter.until) return this.currentRouter.router
    return this.issuingRouter(ring, now)
  }

  /**
   * The router new clients get until the epoch ends: the current key; when the primary's push is
   * late, the newest key held (tickets still resume on every node holding it); with no key at
   * all, a random one of this worker's (its tickets resume here only).
   */
  private issuingRouter (ring: TicketKeyRing, now: number): Router {
    const issuing = ring.issuing(now)
    if (issuing === undefined) {
      if (this.ownKeys === undefined) {
        this.opts.log?.error({}, 'no ticket key from the primary: tickets are issued under a key of this worker\'s own until keys come (they resume on this worker only)')
        this.ownKeys = crypto.randomBytes(TICKET_KEY_LENGTH)
      }
      const router = this.router(-1, { epoch: ring.epochAt(now), keys: this.ownKeys, name: this.ownKeys.subarray(0, 16) })
      this.currentRouter = { router, until: (ring.epochAt(now) + 1) * this.opts.ticketRotationSeconds * 1000 }
      return router
    }
    if (issuing.fallback && !this.fellBack) {
      this.opts.log?.warn({ epoch: ring.epochAt(now), issuingEpoch: issuing.generation.epoch }, 'the primary has not sent the current ticket key yet: tickets are issued under the newest key this worker holds')
    }
    this.fellBack = issuing.fallback
    const router = this.router(issuing.schedule, issuing.generation)
    this.currentRouter = { router, until: issuing.until }
    return router
  }

  /**
   * A name is tag(8) | epoch(8): the tag compared byte by byte and the epoch read as a number,
   * without making a string or a BigInt per connection (nor a heap number: a tag read as a u32
   * is above the small-integer range half the time). Only names byName() accepted are cached,
   * until they stop being acceptable.
   */
  private cachedByName (name: Buffer, now: number): Router | undefined {
    // An epoch above 2^32 - 1 is no epoch of ours (a one-second rotation reaches it in 136 years).
    if (name.length !== 16 || name[8] !== 0 || name[9] !== 0 || name[10] !== 0 || name[11] !== 0) return undefined
    // Byte by byte: Buffer.readUInt32BE boxed its intermediate results (~200 bytes per connection).
    const epoch = (name[12] as number) * 0x1000000 + (((name[13] as number) << 16) | ((name[14] as number) << 8) | (name[15] as number))
    for (let i = 0; i < this.byTicketName.length; i++) {
      const entry = this.byTicketName[i] as { tag: Buffer; byEpoch: Map<number, CachedRouter> }
      if (!sameTag(entry.tag, name)) continue
      const cached = entry.byEpoch.get(epoch)
      if (cached !== undefined && now < cached.until) return cached.router
    }
    return undefined
  }

  /** How many generations' routers this worker holds (tests, diagnostics). */
  get generations (): number { return this.routers.size }

  /**
   * Whether `context` is one a certificate choice of this node carries now: a session made
   * under it is another certificate's, not one of a node set up differently.
   */
  knowsSessionIdContext (context: Buffer): boolean {
    this.knownContexts ??= new Set([...this.routerFor(undefined).values()].map((choice) => choice.sessionIdContext.toString('latin1')))
    return this.knownContexts.has(context.toString('latin1'))
  }

  private router (scheduleIndex: number, generation: TicketKeyGeneration): Router {
    const key = `${scheduleIndex}:${generation.epoch}`
    let router = this.routers.get(key)
    if (router === undefined) {
      this.prune()
      router = buildSniRouter(this.material.certificates, { ...this.contextOptions, ticketKeys: generation.keys }, this.served)
      this.routers.set(key, router)
      this.evictBeyondCap()
    }
    return router
  }

  /**
   * A backstop for genuine tickets of many epochs (a long --session-timeout over a short
   * --ticket-rotation): the oldest made goes, never the current one; a ticket of its epoch
   * that comes back builds it again.
   */
  private evictBeyondCap (): void {
    for (const [key, router] of this.routers) {
      if (this.routers.size <= MAX_GENERATIONS) return
      if (router === this.currentRouter?.router) continue
      this.routers.delete(key)
      const [index, epoch] = key.split(':').map(Number) as [number, number]
      this.byTicketName[index]?.byEpoch.delete(epoch)
    }
  }

  /** The global settings (a choice made without a crt-list line's). */
  get global (): Bind { return this.globalBind }

  private entriesFor (material: TlsMaterial): { entries: ServedEntry[]; global: Bind } {
    const base = this.opts.sessionIdContext !== '' ? this.opts.sessionIdContext : DEFAULT_SESSION_ID_CONTEXT
    return servedEntries(material, { policy: this.opts.policy, clientVerify: this.opts.clientVerify, alpn: this.opts.alpn ?? [], sessionTickets: this.opts.sessionTickets }, base)
  }

  private optionsFor (material: TlsMaterial): ContextOptions {
    const given = this.opts.sessionIdContext !== ''
    return {
      sessionIdContext: sessionIdContextFor(given ? this.opts.sessionIdContext : DEFAULT_SESSION_ID_CONTEXT, this.opts.clientVerify, material.clientAuth.ca),
      perCertificate: !given,
      sessionTimeoutSeconds: this.opts.sessionTimeoutSeconds,
      policy: this.opts.policy,
      clientAuth: material.clientAuth
    }
  }

  /** Forget generations no ticket can use any more (checked at most once a minute). */
  private prune (): void {
    const now = this.now()
    if (now - this.lastPrune < 60_000) return
    this.lastPrune = now
    this.dropUnheld(now)
  }

  /** The ring drops (and zeroes) expired keys; their routers and cached choices go with them. */
  private dropUnheld (now: number): void {
    const ring = this.ring
    if (ring === undefined) return
    ring.prune(now)
    for (const [key, router] of this.routers) {
      const [index, epoch] = key.split(':').map(Number) as [number, number]
      // The worker's own key (index -1) goes once the primary's keys came.
      if (index === -1 ? ring.issuing(now) !== undefined : !ring.has(index, epoch)) {
        this.routers.delete(key)
        if (router === this.currentRouter?.router) this.currentRouter = undefined
      }
    }
    for (const { byEpoch } of this.byTicketName) {
      for (const [epoch, cached] of byEpoch) if (now >= cached.until) byEpoch.delete(epoch)
    }
  }

  /** Into the ring; the per-name caches follow the ring's secrets (their order is the index). */
  private takeKeys (set: unknown): boolean {
    const ring = this.ring as TicketKeyRing
    const now = this.now()
    const result = ring.update(set, now)
    if (!result.ok) {
      this.opts.log?.error({ reason: result.reason }, 'ticket keys from the primary refused (malformed): the keys held stay as they were')
      return false
    }
    if (result.tagsChanged) {
      // Another secret, or another order: indexes change, every router goes.
      this.routers.clear()
      this.currentRouter = undefined
      this.byTicketName = ring.tags.map((tag) => ({ tag: Buffer.from(tag.subarray(0, 8)), byEpoch: new Map<number, CachedRouter>() }))
    }
    this.dropUnheld(now)
    return true
  }
}

type Router = SniRouter<CertificateChoice>

/** Generations (SNI routers) a worker holds at most; the acceptable window is normally 2-3. */
const MAX_GENERATIONS = 64

/** Whether the ticket key name starts with the 8-byte tag. */
function sameTag (tag: Buffer, name: Buffer): boolean {
  for (let i = 0; i < 8; i++) if (tag[i] !== name[i]) return false
  return true
}

/** The ticket whose first 16 bytes are `hello.ticketKeyName` (client-hello.ts picks it so). */
function presentedTicket (hello: ClientHelloInfo): Buffer | undefined {
  const psk = hello.pskIdentities[0]
  return psk !== undefined && psk.length >= TICKET_KEY_NAME_LENGTH ? psk : hello.sessionTicket
}

interface CachedRouter {
  router: Router
  /** ms since the epoch at which this choice must be made again */
  until: number
}
