import type net from 'node:net'
import { performance } from 'node:perf_hooks'
import tls from 'node:tls'
import type { WorkerSessionCache } from '../cache/worker-session-cache.js'
import type { WorkerMetrics } from '../metrics/worker-metrics.js'
import { BurstLogs } from '../util/burst-log.js'
import type { Logger } from '../util/logger.js'
import { SlotList } from '../util/slot-list.js'
import { DeadlineSweep, sweepPeriodMs } from '../util/sweep-timers.js'
import { backendLookupFor } from '../proxy/backend-lookup.js'
import { backendTarget, forwardToBackend, type BackendTarget, type ConnectionAddresses } from '../proxy/forwarder.js'
import { isFailure, noTls, readPreamble, type HeaderCheck, type Preamble, type PreambleFailure } from '../proxy/preamble.js'
import type { ProxyHeader } from '../proxy/proxy-protocol.js'
import { isTrustedPeer, proxyTrustList } from '../proxy/proxy-trust.js'
import { SourceLimiter } from '../admission/source-limiter.js'
import type { WorkerSettings } from '../node/worker-settings.js'
import { StapleStore, type Staple } from '../ocsp/staple-store.js'
import { checkClientCertificate, type ClientCertificate } from './client-auth.js'
import type { ClientHelloInfo } from './client-hello.js'
import { tlvBuilder, type TlvBuilder } from './connection-tlvs.js'
import { ContextPool } from './context-pool.js'
import type { CertificateChoice } from './certificate-choice.js'
import type { CertificateContext } from './secure-contexts.js'
import type { CertificateBundle } from './certificates.js'
import type { Bind } from './line-binds.js'
import { readSession, sessionProtocolVersion, TLS1_3_VERSION } from './session-der.js'
import type { TlsMaterial } from './tls-material.js'

/** A connection: its handshake state until done, and its place among the open ones until closed. */
interface Pending {
  socket: net.Socket
  /** When --handshake-timeout gives up on it (performance.now() ms; set by the handshake sweep). */
  deadline: number
  /** Its index in the handshake sweep (-1: none). */
  sweepSlot: number
  /** Its index in `open` (-1 once closed). */
  openSlot: number
  /** Counted once: the first reason a connection was refused wins. */
  failed: boolean
  /** Its client's address while it holds a slot of --max-handshakes-per-source. */
  source: string | undefined
  /** The ClientHello (after any PROXY header) was read: a timeout from then on is the handshake's. */
  helloRead: boolean
}

/** Where refused connections are counted and logged (the worker's admission). */
export interface RefusalSink {
  refused: (reason: string, address: string | undefined) => void
  /** A PROXY header from a peer outside --proxy-from (counted by the caller). */
  untrusted: (peer: string | undefined) => void
}

type Refusal = Extract<PreambleFailure, { reason: string }>
const UNTRUSTED_SOURCE: Refusal = { kind: 'proxy', reason: 'untrusted_source' }
const PER_SOURCE: Refusal = { kind: 'refused', reason: 'per_source' }
const CLOSED: PreambleFailure = { kind: 'closed' }
/** Backend failures of one kind, logged again only after this long without one. */
const BACKEND_QUIET_MS = 5000

/** A handshake that offered a TLS 1.2 session ID (without a ticket), by that ID. */
interface Offer {
  /** True once resumeSession handed OpenSSL a cached session for this ID. */
  supplied: boolean
  /** The session handed over, to tell a bad one from one made elsewhere or declined for the client's reasons. */
  der?: Buffer
}

/**
 * Terminates TLS for the connections a worker accepts. Each connection goes:
 * PROXY header → ClientHello peek → TLSSocket (context picked from the peeked SNI and ticket
 * key name) → backend.
 *
 * Sockets are built here, not by a tls.Server, so each one gets its own secure context; the
 * two "hubs" are tls.Servers used only as targets of OpenSSL's session events:
 * - `sessionHub` has the newSession/resumeSession listeners of the session-ID cache. Node then
 *   parses the ClientHello again (in C++) and calls into JavaScript once or twice per
 *   handshake (resumeSession, newSession).
 * - `plainHub` has none, like a plain tls.Server: a connection that can never use the
 *   session-ID cache goes there and skips that work (see hubFor).
 * Nothing about a handshake waits on another process except an L1 miss, bounded by the
 * cache's timeout.
 */
export class TlsTerminator {
  private readonly contexts: ContextPool
  private readonly sessionHub = tls.createServer()
  private readonly plainHub = tls.createServer()
  /** By the offered ID (latin1): resumeSession is only given the ID. */
  private readonly offers = new Map<string, Offer>()
  /** Per reason: backend connection failures are logged when they start and end, not per connection. */
  /** A backend down fails every connection: one line when failures of a kind start, one when they stop, with the count. */
  private readonly backendFailures: BurstLogs<undefined>
  private readonly backend: BackendTarget
  private readonly ticketsEnabled: boolean
  private readonly tlvs: TlvBuilder | undefined
  private readonly staples: StapleStore | undefined
  /** Contexts OpenSSL refused to build, each logged once (a rotation or reload makes new ones, logged again). */
  private readonly refusedContexts = new WeakSet<CertificateContext>()
  /** --proxy-from: the peers a PROXY header is believed from; undefined = any (or no PROXY in). */
  private readonly trust: net.BlockList | undefined
  /** --max-handshakes-per-source; undefined when off. */
  private readonly sources: SourceLimiter | undefined
  /** Decided at start: the per-source slot is taken at accept (no PROXY in: the TCP peer is the client)... */
  private readonly sourceAtAccept: boolean
  /** ...or once the PROXY header is read (--proxy-from, or a per-source cap behind PROXY). */
  private readonly checkHeader: boolean
  /** The open connections (a SlotList, not a Set: nothing allocated per connection). */
  private readonly open = new SlotList<'openSlot', Pending>('openSlot')
  /** Connections until their handshake is done, failed at --handshake-timeout. */
  private readonly handshaking: DeadlineSweep<Pending>
  /** Sessions refused for another session-ID context, each kind logged once. */
  private otherSetupLogged = false
  private otherCertificateLogged = false

  constructor (
    private readonly settings: WorkerSettings,
    material: TlsMaterial,
    private readonly cache: WorkerSessionCache,
    private readonly metrics: WorkerMetrics,
    private readonly log: Logger,
    private readonly admission: RefusalSink
  ) {
    this.contexts = new ContextPool(material, {
      sessionIdContext: settings.sessionIdContext,
      sessionTimeoutSeconds: settings.sessionTimeout,
      policy: settings.tlsPolicy,
      clientVerify: settings.clientVerify,
      alpn: settings.alpn,
      sessionTickets: settings.sessionTickets,
      ticketKeys: settings.ticketKeys,
      ticketRotationSeconds: settings.ticketRotationSeconds,
      log
    })
    this.ticketsEnabled = this.contexts.ticketsEnabled
    this.tlvs = tlvBuilder(settings.proxyTlv, settings.proxyProtocolOut)
    this.trust = settings.proxyProtocolIn !== 'off' ? proxyTrustList(settings.proxyFrom) : undefined
    const backend = settings.backend
    this.backendFailures = new BurstLogs({
      quietMs: BACKEND_QUIET_MS,
      onStart: (reason) => this.log.warn({ backend, reason }, `backend connection failed; further failures of this kind are counted (tlsfleet_backend_errors_total), not logged, until ${BACKEND_QUIET_MS / 1000} s pass without one`),
      onEnd: (reason, failures, seconds) => this.log.info({ backend, reason, failures, seconds: Math.round(seconds) }, 'backend connection failures stopped')
    })
    this.sources = settings.handshakesPerSource > 0 ? new SourceLimiter(settings.handshakesPerSource) : undefined
    this.sourceAtAccept = this.sources !== undefined && settings.proxyProtocolIn === 'off'
    this.checkHeader = this.trust !== undefined || (this.sources !== undefined && settings.proxyProtocolIn !== 'off')
    if (settings.ocspStapling) {
      this.staples = new StapleStore([this.sessionHub, this.plainHub])
      this.staples.useDefaultCertificate(this.defaultCertificate())
    }
    this.handshaking = new DeadlineSweep<Pending>(sweepPeriodMs(settings.handshakeTimeoutMs, 10), (pending) => this.fail(pending, pending.helloRead ? 'timeout' : 'hello_timeout'))
    const lookup = backendLookupFor(settings.backend.host, {
      refreshMs: settings.backendRefreshMs,
      onChange: (addresses, previous) => this.log.info({ backend: settings.backend.host, addresses, previous }, 'backend address changed'),
      onStaleError: (err) => this.log.warn({ backend: settings.backend.host, err }, 'backend name lookup failed: the last addresses stay in use')
    })
    this.backend = backendTarget({
      backend: settings.backend,
      ...(lookup !== undefined ? { lookup: lookup.lookup } : {}),
      proxyProtocolOut: settings.proxyProtocolOut,
      connectTimeoutMs: settings.connectTimeoutMs,
      idleTimeoutMs: settings.idleTimeoutMs,
      finTimeoutMs: settings.finTimeoutMs,
      keepaliveMs: settings.tcpKeepaliveMs,
      onBackendError: (reason) => {
        this.metrics.backendError(reason)
        this.backendFailed(reason)
      }
    })
    this.sessionHub.on('newSession', (id: Buffer, der: Buffer, done: () => void) => {
      // TLS 1.3 sessions never resume by session ID (the client's legacy ID is random).
      if (sessionProtocolVersion(der) !== TLS1_3_VERSION) this.cache.add(id, der)
      done()
    })
    this.sessionHub.on('resumeSession', (id: Buffer, done: (err: Error | null, der: Buffer | null) => void) => {
      this.resume(id, done)
    })
  }

  /** Swap in new certificates: new handshakes use them, established connections are untouched. */
  setMaterial (material: TlsMaterial): void {
    this.contexts.setMaterial(material)
    if (this.staples !== undefined) this.staples.useDefaultCertificate(this.defaultCertificate())
  }

  /**
   * The certificate a client without SNI gets with stapling (ownContext): the default name's
   * `first`, which Node's OCSPRequest asks the hub for. Not always the first file: one
   * --sigalgs does not sign every allowed version with is passed over (certificate-choice.ts).
   */
  private defaultCertificate (): CertificateBundle | undefined {
    return this.contexts.routerFor(undefined).fallback.first.bundles[0]
  }

  /** The ticket keys the primary pushed at a rotation (checked: a malformed set is refused and logged). */
  setTicketKeys (keys: unknown): boolean {
    return this.contexts.setTicketKeys(keys)
  }

  setStaples (staples: Staple[]): void {
    this.staples?.set(staples)
  }

  /** Connections open now. */
  get connections (): number { return this.open.size }

  /** Closes every open connection (the end of a worker's grace period). */
  destroyAll (): void {
    for (const pending of this.open.toArray()) pending.socket.destroy()
  }

  handle (socket: net.Socket): void {
    this.metrics.connectionOpened()
    const pending: Pending = { socket, deadline: 0, sweepSlot: -1, openSlot: -1, failed: false, source: undefined, helloRead: false }
    this.open.add(pending)
    this.handshaking.add(pending, this.settings.handshakeTimeoutMs)
    socket.on('close', () => {
      this.handshaking.delete(pending)
      this.open.delete(pending)
      this.metrics.connectionClosed()
      this.releaseSource(pending)
    })
    socket.on('error', ignore) // reported through close; a reset client is not an error of ours

    if (this.sourceAtAccept && !this.admitSource(pending, socket.remoteAddress)) {
      this.refuse(pending, PER_SOURCE)
      return
    }
    // Node keeps the peer's address once asked; asked now, it is still known when the header
    // arrives with a reset (HAProxy's health checks: a LOCAL header, then RST) and the socket
    // is already gone.
    if (this.checkHeader) void socket.remoteAddress
    if (this.trust !== undefined && !this.admitPeer(pending)) return
    const check = this.checkHeader ? this.headerCheck(pending) : undefined
    readPreamble(socket, this.settings.proxyProtocolIn, (result) => {
      if (!isFailure(result)) {
        this.startTls(pending, result)
      } else if (result.kind === 'proxy' || result.kind === 'refused') {
        this.refuse(pending, result)
      } else if (result.kind === 'no_tls') {
        pending.failed = true
        this.metrics.closedBeforeTls(result.header)
        pending.socket.destroy()
      } else {
        this.fail(pending, result.kind)
      }
    }, check)
  }

  /**
   * At accept, with --proxy-from: a peer outside it can never be served with v1/v2 (its header
   * would be refused, its lack of one too), so it is closed now; waiting for its header let it
   * hold connections of the worker's cap for up to --handshake-timeout, refusing the balancer's.
   * With auto it is a direct client: its per-source slot is taken now, as without PROXY in (it
   * was taken at its first byte, so connections sending nothing were not counted). False when
   * the connection was refused. (No address: reset before it was accepted, see headerCheck.)
   */
  private admitPeer (pending: Pending): boolean {
    const { socket } = pending
    if (this.trust === undefined || socket.remoteAddress === undefined || isTrustedPeer(this.trust, socket)) return true
    if (this.settings.proxyProtocolIn !== 'auto') {
      this.refuse(pending, UNTRUSTED_SOURCE)
      return false
    }
    if (!this.admitSource(pending, socket.remoteAddress)) {
      this.refuse(pending, PER_SOURCE)
      return false
    }
    return true
  }

  /**
   * Asked once the PROXY header is read (only with --proxy-from or a per-source cap): a header
   * from a peer outside --proxy-from closes the connection; the client (the header's source,
   * else the TCP peer: a LOCAL header is the balancer's own check) takes a per-source slot.
   */
  private headerCheck (pending: Pending): HeaderCheck {
    return (header: ProxyHeader | undefined, after: number) => {
      if (header !== undefined && this.trust !== undefined) {
        // No address: the peer reset before the worker accepted it (HAProxy's checks: a LOCAL
        // header, then RST), so it cannot be checked, nor forge anything: a closed connection,
        // and with nothing after the header, closed before TLS like any other check.
        if (pending.socket.remoteAddress === undefined) return after === 0 ? noTls(header) : CLOSED
        if (!isTrustedPeer(this.trust, pending.socket)) return UNTRUSTED_SOURCE
      }
      // A slot taken at accept (a direct client, see admitPeer) is not taken twice.
      if (this.sources !== undefined && pending.source === undefined && !this.admitSource(pending, header?.source?.address ?? pending.socket.remoteAddress)) return PER_SOURCE
      return undefined
    }
  }

  /** Takes a slot for the client's address; false (counted as refused) when it holds all of them. */
  private admitSource (pending: Pending, address: string | undefined): boolean {
    if (address === undefined || this.sources === undefined) return true
    if (!this.sources.admit(address)) {
      this.admission.refused('per_source', address)
      return false
    }
    pending.source = address
    return true
  }

  private releaseSource (pending: Pending): void {
    if (pending.source === undefined) return
    this.sources?.release(pending.source)
    pending.source = undefined
  }

  /**
   * Closed before TLS: a PROXY header refused (counted here by reason; one from outside
   * --proxy-from is logged per burst too), or a per-source cap (counted when it refused).
   */
  private refuse (pending: Pending, failure: Refusal): void {
    pending.failed = true
    if (failure.kind === 'proxy') {
      this.metrics.proxyHeaderError(failure.reason)
      if (failure === UNTRUSTED_SOURCE) this.admission.untrusted(pending.socket.remoteAddress)
    }
    pending.socket.destroy()
  }

  /**
   * The socket's own context: OpenSSL serves the client one of the name's certificates it can
   * use. With OCSP stapling, a client that asks for a staple without SNI gets the default
   * name's `first` alone: Node then staples the hub's own certificate, that one (defaultCertificate).
   */
  private ownContext (choice: CertificateChoice, hello: ClientHelloInfo | undefined): CertificateContext {
    if (this.staples !== undefined && hello?.statusRequest !== false && (hello?.serverName ?? '') === '') return choice.first
    return choice.all
  }

  /**
   * A context handed over through OpenSSL's SNI callback: Node installs only one certificate of
   * it (the last one set), so one certificate per context: ECDSA when the ClientHello says the
   * client can verify it, else RSA, else the first given. With stapling, Node staples that one.
   */
  private sniContext (choice: CertificateChoice, hello: ClientHelloInfo | undefined): CertificateContext {
    return choice.single(hello?.signatures, this.bindOf(choice).tls13 && hello?.offersTls13 === true)
  }

  /**
   * The certificate's context, built now if this generation has not served it yet. The primary
   * checked every file under the same policy, so a refusal here is unexpected: the connection
   * fails (`tls_error`), the worker stays up and says why.
   */
  private readyContext (certificate: CertificateContext, pending: Pending): tls.SecureContext | undefined {
    try {
      return certificate.context()
    } catch (err) {
      if (!this.refusedContexts.has(certificate)) {
        this.refusedContexts.add(certificate)
        this.log.error({ err, file: certificate.paths }, 'cannot build the certificate\'s TLS context; its clients are refused')
      }
      this.fail(pending, 'tls_error')
      return undefined
    }
  }

  private fail (pending: Pending, reason: string): void {
    if (pending.failed) return
    pending.failed = true
    this.metrics.handshakeFailed(reason)
    pending.socket.destroy()
  }

  private startTls (pending: Pending, preamble: Preamble): void {
    pending.helloRead = true
    const { socket } = pending
    const hello = preamble.hello
    const router = this.contexts.routerFor(hello)
    const strict = this.settings.sniNoMatch === 'abort'
    // With abort, a name sent that no certificate can name (not a DNS name) is refused too.
    const choice = strict ? (hello?.serverNameImplausible === true && hello.serverName === undefined ? undefined : router.lookupStrict(hello?.serverName)) : router.lookup(hello?.serverName)
    if (choice === undefined) {
      // --sni-nomatch abort: answer as OpenSSL would (a fatal unrecognized_name alert), then close.
      socket.write(UNRECOGNIZED_NAME_ALERT, () => this.fail(pending, 'sni_nomatch'))
      return
    }
    // A ClientHello we could not read ahead gets the default certificate's context, under which
    // OpenSSL resumes before the SNI callback picks the name's certificate (and a resumed
    // handshake never calls it): so nothing resumes there, or a session of the default
    // certificate would go on under any name the client sends.
    // Its settings (the global options, or its crt-list line's): ALPN, client certificates, versions.
    const bind = this.bindOf(choice)
    const own = this.ownContext(choice, hello)
    const secureContext = this.readyContext(hello === undefined ? own.unresumable() : own, pending)
    if (secureContext === undefined) return
    const started = performance.now()
    const hub = this.hubFor(hello, bind)
    // Node asks resumeSession only for a TLS 1.2 session ID offered without a ticket.
    const offerKey = hub === this.sessionHub && hello !== undefined && hello.sessionId.length > 0 && hello.sessionTicket === undefined
      ? hello.sessionId.toString('latin1')
      : undefined
    const offer: Offer | undefined = offerKey !== undefined ? { supplied: false } : undefined
    if (offerKey !== undefined) this.offers.set(offerKey, offer as Offer)
    const forget = offerKey !== undefined ? (): void => { if (this.offers.get(offerKey) === offer) this.offers.delete(offerKey) } : undefined

    const options: tls.TLSSocketOptions & { allowHalfOpen: boolean } = {
      isServer: true,
      server: hub,
      secureContext,
      allowHalfOpen: true,
      ...bind.socketOptions
    }
    // The context already comes from the SNI we peeked. OpenSSL's SNI callback, otherwise one
    // more call into JS per handshake, is needed by a ClientHello we could not parse, and with
    // OCSP stapling: Node looks up the staple for the certificate of the context the SNI
    // callback chose (the hub's own one without it).
    if (hello === undefined || this.staples !== undefined) {
      options.SNICallback = (name, cb) => {
        const chosen = strict ? router.lookupStrict(name) : router.lookup(name)
        // The socket's ALPN and client certificate request were set from the settings of the
        // choice made before; another crt-list line's settings cannot be put on it now.
        if (chosen !== undefined && this.bindOf(chosen) !== bind) {
          this.fail(pending, 'tls_error')
          return cb(new Error('the SNI name is served with other TLS settings (another crt-list line) than the ClientHello read ahead chose'), undefined)
        }
        if (chosen !== undefined) {
          const context = this.readyContext(this.sniContext(chosen, hello), pending)
          if (context === undefined) return cb(new Error('the certificate\'s context could not be built'), undefined)
          return cb(null, context)
        }
        // --sni-nomatch abort, seen only now (a ClientHello we could not read ahead): refused,
        // closed without the alert (OpenSSL is mid-handshake).
        this.fail(pending, 'sni_nomatch')
        cb(new Error('no certificate for the SNI name (--sni-nomatch abort)'), undefined)
      }
    }
    const tlsSocket = new tls.TLSSocket(socket, options)

    // `on`, not `once`: these come once per socket (a renegotiation's 'secure' is ignored), and a
    // `once` wrapper is one more allocation per connection for the collector to move.
    let secured = false
    tlsSocket.on('secure', () => {
      if (secured) return
      secured = true
      this.handshaking.delete(pending)
      forget?.()
      this.releaseSource(pending)
      let client: ClientCertificate | undefined
      if (bind.clientVerify !== 'none') {
        const check = checkClientCertificate(tlsSocket, bind.clientVerify, bind.revoked)
        if (!check.ok) {
          // A session whose certificate was revoked since it was made is bad everywhere.
          if (offer?.supplied === true && hello !== undefined && tlsSocket.isSessionReused()) {
            this.metrics.sessionInvalidated()
            this.cache.invalidate(hello.sessionId)
          }
          this.refuseClientCertificate(check.reason, pending)
          return
        }
        client = check.certificate
      }
      const reused = tlsSocket.isSessionReused()
      this.metrics.handshakeDone(reused ? 'resumed' : 'full', tlsSocket.getProtocol() ?? 'unknown', (performance.now() - started) / 1000)
      if (offer?.supplied === true && !reused && hello !== undefined) this.refused(hello.sessionId, offer, choice)
      forwardToBackend(tlsSocket, this.backend, this.proxyOut(socket, preamble, tlsSocket, client))
    })
    tlsSocket.on('error', (err: Error & { code?: string }) => {
      forget?.()
      if (secured) return // after the handshake the forwarder owns the connection's errors
      this.log.debug({ err }, 'TLS handshake failed')
      if (err.code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') this.refuseClientCertificate('missing', pending)
      else this.fail(pending, 'tls_error')
    })
    // allowHalfOpen keeps a socket open after the client's FIN; before the handshake is done
    // that only means the client gave up.
    tlsSocket.on('end', () => { if (!secured) this.fail(pending, 'closed') })
    if (forget !== undefined) tlsSocket.on('close', forget)
  }

  /**
   * The hub for a connection. The session-ID cache only ever serves TLS 1.2 handshakes
   * without a ticket, so these can skip it:
   * - a client offering TLS 1.3 when the TLS policy allows it (it then gets 1.3, whose
   *   sessions resume by ticket only);
   * - with tickets on, a TLS 1.2 client presenting a ticket (Node does not ask resumeSession
   *   then, and a ticket that fails to decrypt makes a full handshake whose client gets a fresh
   *   ticket);
   * - with tickets on, a new TLS 1.2 client (no session ID) that can take a ticket: it gets one
   *   and comes back with it, never with the session ID alone, so storing its session for the
   *   ID cache would cost an IPC message to L2 and a sync update per handshake for nothing.
   * With tickets off, OpenSSL ignores tickets and the session ID is all there is.
   */
  private hubFor (hello: ClientHelloInfo | undefined, bind: Bind): tls.Server {
    if (hello === undefined) return this.sessionHub
    if (hello.offersTls13 && bind.tls13) return this.plainHub
    // A crt-list line with no-tls-tickets issues none: its sessions resume by session ID.
    const tickets = this.ticketsEnabled && bind.sessionTickets
    if (tickets && hello.sessionTicket !== undefined) return this.plainHub
    if (tickets && hello.sessionTicketExtPresent && hello.sessionId.length === 0) return this.plainHub
    return this.sessionHub
  }

  /** The settings a choice is served with: its crt-list line's, else the global ones. */
  private bindOf (choice: CertificateChoice): Bind {
    return choice.bind ?? this.contexts.global
  }

  /** A line per failed connection flooded the log: a line per burst and kind (see backendFailures). */
  private backendFailed (reason: string): void {
    this.backendFailures.note(reason, undefined)
  }

  /** What the PROXY header going out says; only that header needs it (each address is a system call). */
  private proxyOut (socket: net.Socket, preamble: Preamble, tlsSocket: tls.TLSSocket, client: ClientCertificate | undefined): ConnectionAddresses | undefined {
    if (this.settings.proxyProtocolOut === 'off') return undefined
    const tlvs = this.tlvs?.(tlsSocket, client, preamble.hello?.serverName)
    // A LOCAL (v2) or UNKNOWN (v1) header, or a PROXY one of family AF_UNSPEC, carries no
    // client: the connection's own endpoints stand for it (the PROXY spec's rule, and what
    // HAProxy passes on with send-proxy).
    const addresses: ConnectionAddresses = preamble.proxy !== undefined && preamble.proxy.command === 'proxy' && preamble.proxy.source !== undefined
      ? { source: preamble.proxy.source, destination: preamble.proxy.destination, ...(preamble.proxy.family === 'unix' ? { family: 'unix' as const } : {}) }
      : {
          source: socket.remoteAddress !== undefined && socket.remotePort !== undefined ? { address: socket.remoteAddress, port: socket.remotePort } : undefined,
          destination: socket.localAddress !== undefined && socket.localPort !== undefined ? { address: socket.localAddress, port: socket.localPort } : undefined
        }
    if (tlvs !== undefined) addresses.tlvs = tlvs
    return addresses
  }

  /**
   * OpenSSL did not resume a cached session we supplied. Dropped farm-wide only when the session
   * is bad in itself: not a whole SSL_SESSION, or past its own time plus timeout. OpenSSL also
   * declines a sound session for the offering client's reasons (extended master secret on where
   * the session was made without, a protocol version it did not offer), and a TLS 1.2 session
   * ID travels in clear: dropping then let any client end another's session on every node.
   * A session made under another session-ID context than the one of the certificates this
   * client named is sound where it was made: another certificate's (a client offering one
   * name's session to another), or a node's set up differently (a rolling change of
   * --session-id-context, --client-verify, --client-ca or of the name's certificates): counted,
   * kept.
   */
  private refused (id: Buffer, offer: Offer, choice: CertificateChoice): void {
    const session = offer.der !== undefined ? readSession(offer.der, Date.now() / 1000) : undefined
    const context = session?.sessionIdContext
    if (context !== undefined && !context.equals(choice.sessionIdContext)) {
      this.metrics.sessionOtherContext()
      if (this.otherSetupLogged && this.otherCertificateLogged) return
      const fields = { sessionIdContext: context.toString('latin1'), ours: choice.sessionIdContext.toString('latin1') }
      if (this.contexts.knowsSessionIdContext(context)) {
        if (this.otherCertificateLogged) return
        this.otherCertificateLogged = true
        this.log.info(fields, 'a session made with another certificate of this node was offered for a name that certificate does not serve: a full handshake, the session kept for its own names (logged once)')
      } else {
        if (this.otherSetupLogged) return
        this.otherSetupLogged = true
        this.log.warn(fields, 'a farm session made under another session-ID context cannot resume here: the nodes differ in --session-id-context, --client-verify, --client-ca or the certificates of the name (logged once)')
      }
      return
    }
    // Whole and within its life: the client's reason, not the session's; its owner still resumes it.
    if (context !== undefined && session?.expired === false) {
      this.metrics.sessionDeclined()
      return
    }
    this.metrics.sessionInvalidated()
    this.cache.invalidate(id)
  }

  /** A client certificate refused (--client-verify): a handshake failure, counted with OpenSSL's reason. */
  private refuseClientCertificate (reason: string, pending: Pending): void {
    this.metrics.clientCertificateRejected(reason)
    this.log.debug({ reason }, 'client certificate refused')
    this.fail(pending, 'client_certificate')
  }

  /** resumeSession (TLS 1.2 session ID, no ticket): answer from L1 at once, else from L2. */
  private resume (id: Buffer, done: (err: Error | null, der: Buffer | null) => void): void {
    const offer = this.offers.get(id.toString('latin1'))
    const found = this.cache.lookup(id)
    if (Buffer.isBuffer(found)) {
      if (offer !== undefined) { offer.supplied = true; offer.der = found }
      done(null, found)
      return
    }
    found.then((der) => {
      if (der !== null && offer !== undefined) { offer.supplied = true; offer.der = der }
      done(null, der)
    }, () => done(null, null))
  }
}

function ignore (): void {}

/** A TLS record: fatal alert unrecognized_name (112). */
const UNRECOGNIZED_NAME_ALERT = Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x70])

