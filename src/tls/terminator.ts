import type net from 'node:net'
import tls from 'node:tls'
import type { WorkerSessionCache } from '../cache/worker-session-cache.js'
import type { WorkerMetrics } from '../metrics/worker-metrics.js'
import type { Logger } from '../util/logger.js'
import { forwardToBackend } from '../proxy/forwarder.js'
import { isFailure, readPreamble, type Preamble } from '../proxy/preamble.js'
import type { ProxyAddress } from '../proxy/proxy-protocol.js'
import type { WorkerSettings } from '../node/worker-settings.js'
import { StapleStore, type Staple } from '../ocsp/staple-store.js'
import { checkClientCertificate, type ClientCertificate } from './client-auth.js'
import type { ClientHelloInfo } from './client-hello.js'
import { tlvBuilder, type TlvBuilder } from './connection-tlvs.js'
import { ContextPool } from './context-pool.js'
import { sessionProtocolVersion, TLS1_3_VERSION } from './session-der.js'
import type { TlsMaterial } from './tls-material.js'

interface Handshake {
  hello?: ClientHelloInfo
  /** True once resumeSession handed OpenSSL a cached session for this connection's ID. */
  suppliedSession: boolean
}

/**
 * Terminates TLS for the connections a worker accepts. Each connection goes:
 * PROXY header → ClientHello peek → TLSSocket (context picked from the peeked SNI) → backend.
 *
 * `hub` is a tls.Server used only as the target of OpenSSL's session events (newSession,
 * resumeSession); sockets are built here so each one can get its own secure context and its
 * own bookkeeping, and nothing about a handshake ever waits on another process except an L1
 * miss, which is bounded by the cache's timeout.
 */
export class TlsTerminator {
  private readonly contexts: ContextPool
  private readonly hub = tls.createServer()
  /** Handshakes in progress, by the legacy session ID the client offered (hex). */
  private readonly offering = new Map<string, Handshake>()
  /** Per-socket TLS options decided at start: client certificate request, ALPN. */
  private readonly socketOptions: Pick<tls.TLSSocketOptions, 'requestCert' | 'rejectUnauthorized' | 'ALPNProtocols'>
  private readonly tlvs: TlvBuilder | undefined
  private readonly staples: StapleStore | undefined
  readonly connections = new Set<net.Socket>()

  constructor (
    private readonly settings: WorkerSettings,
    material: TlsMaterial,
    private readonly cache: WorkerSessionCache,
    private readonly metrics: WorkerMetrics,
    private readonly log: Logger
  ) {
    this.contexts = new ContextPool(material, {
      sessionIdContext: settings.sessionIdContext,
      sessionTimeoutSeconds: settings.sessionTimeout,
      policy: settings.tlsPolicy,
      clientVerify: settings.clientVerify,
      ticketSecrets: settings.ticketSecrets,
      ticketRotationSeconds: settings.ticketRotationSeconds
    })
    // Only what is asked for: an empty object costs a connection nothing.
    this.socketOptions = {
      ...(settings.clientVerify !== 'none' ? { requestCert: true, rejectUnauthorized: settings.clientVerify === 'require' } : {}),
      ...(settings.alpn.length > 0 ? { ALPNProtocols: alpnWireFormat(settings.alpn) } : {})
    }
    this.tlvs = tlvBuilder(settings.proxyTlv, settings.proxyProtocolOut)
    if (settings.ocspStapling) {
      this.staples = new StapleStore(this.hub)
      this.staples.useDefaultCertificate(material.certificates[0])
    }
    this.hub.on('newSession', (id: Buffer, der: Buffer, done: () => void) => {
      // TLS 1.3 sessions never resume by session ID (the client's legacy ID is random).
      if (sessionProtocolVersion(der) !== TLS1_3_VERSION) this.cache.add(id, der)
      done()
    })
    this.hub.on('resumeSession', (id: Buffer, done: (err: Error | null, der: Buffer | null) => void) => {
      this.resume(id, done)
    })
  }

  /** Swap in new certificates: new handshakes use them, established connections are untouched. */
  setMaterial (material: TlsMaterial): void {
    this.contexts.setMaterial(material)
    this.staples?.useDefaultCertificate(material.certificates[0])
  }

  setStaples (staples: Staple[]): void {
    this.staples?.set(staples)
  }

  handle (socket: net.Socket): void {
    this.metrics.connectionsAccepted.inc()
    this.metrics.connectionsActive.inc()
    this.connections.add(socket)
    socket.once('close', () => {
      this.connections.delete(socket)
      this.metrics.connectionsActive.dec()
    })
    socket.on('error', () => { /* reported through close; a reset client is not an error of ours */ })

    let failed = false
    const fail = (reason: string): void => {
      if (failed) return
      failed = true
      this.metrics.handshakeFailures.inc({ reason })
      socket.destroy()
    }
    const timer = setTimeout(() => fail('timeout'), this.settings.handshakeTimeoutMs)
    socket.once('close', () => clearTimeout(timer))

    readPreamble(socket, this.settings.proxyProtocolIn, (result) => {
      if (isFailure(result)) {
        if (result.kind === 'proxy') {
          this.metrics.proxyHeaderErrors.inc({ reason: result.reason })
          failed = true
          socket.destroy()
        } else {
          fail(result.kind)
        }
        return
      }
      this.startTls(socket, result, timer, fail)
    })
  }

  private startTls (socket: net.Socket, preamble: Preamble, timer: NodeJS.Timeout, fail: (reason: string) => void): void {
    const router = this.contexts.routerFor(preamble.hello)
    const secureContext = this.settings.sniNoMatch === 'abort' ? router.lookupStrict(preamble.hello?.serverName) : router.lookup(preamble.hello?.serverName)
    if (secureContext === undefined) {
      // --sni-nomatch abort: answer as OpenSSL would (a fatal unrecognized_name alert), then close.
      socket.write(UNRECOGNIZED_NAME_ALERT, () => fail('sni_nomatch'))
      return
    }
    const started = process.hrtime.bigint()
    const handshake: Handshake = { suppliedSession: false }
    if (preamble.hello !== undefined) handshake.hello = preamble.hello
    const offeredId = preamble.hello?.sessionId
    const key = offeredId !== undefined && offeredId.length > 0 ? offeredId.toString('hex') : undefined
    if (key !== undefined) this.offering.set(key, handshake)

    const tlsSocket = new tls.TLSSocket(socket, {
      isServer: true,
      server: this.hub,
      secureContext,
      SNICallback: (name, cb) => cb(null, router.lookup(name)),
      allowHalfOpen: true,
      ...this.socketOptions
    } as tls.TLSSocketOptions)

    const forget = (): void => { if (key !== undefined && this.offering.get(key) === handshake) this.offering.delete(key) }
    tlsSocket.once('secure', () => {
      clearTimeout(timer)
      forget()
      let client: ClientCertificate | undefined
      if (this.settings.clientVerify !== 'none') {
        const check = checkClientCertificate(tlsSocket, this.settings.clientVerify)
        if (!check.ok) {
          this.refuseClientCertificate(check.reason, fail)
          return
        }
        client = check.certificate
      }
      const reused = tlsSocket.isSessionReused()
      const result = reused ? 'resumed' : 'full'
      this.metrics.handshakes.inc({ result, version: tlsSocket.getProtocol() ?? 'unknown' })
      this.metrics.handshakeDuration.observe({ result }, Number(process.hrtime.bigint() - started) / 1e9)
      if (handshake.suppliedSession && !reused && offeredId !== undefined) {
        // We offered OpenSSL a cached session and it refused it: the entry is bad everywhere.
        this.metrics.sessionsDeleted.inc()
        this.cache.invalidate(offeredId)
      }
      forwardToBackend(tlsSocket, {
        backend: this.settings.backend,
        proxyProtocolOut: this.settings.proxyProtocolOut,
        connectTimeoutMs: this.settings.connectTimeoutMs,
        idleTimeoutMs: this.settings.idleTimeoutMs,
        source: clientAddress(socket, preamble),
        destination: localAddress(socket, preamble),
        tlvs: this.tlvs?.(tlsSocket, client),
        onBackendError: (reason) => {
          this.metrics.backendErrors.inc({ reason })
          this.log.warn({ backend: this.settings.backend, reason }, 'backend connection failed')
        }
      })
    })
    let secured = false
    tlsSocket.once('secure', () => { secured = true })
    tlsSocket.on('error', (err: Error & { code?: string }) => {
      forget()
      if (secured) return // after the handshake the forwarder owns the connection's errors
      this.log.debug({ err }, 'TLS handshake failed')
      if (err.code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') this.refuseClientCertificate('missing', fail)
      else fail('tls_error')
    })
    // allowHalfOpen keeps a socket open after the client's FIN; before the handshake is done
    // that only means the client gave up.
    tlsSocket.once('end', () => { if (!secured) fail('closed') })
    tlsSocket.once('close', forget)
  }

  /** A client certificate refused (--client-verify): a handshake failure, counted with OpenSSL's reason. */
  private refuseClientCertificate (reason: string, fail: (reason: string) => void): void {
    this.metrics.clientCertificateRejections.inc({ reason })
    this.log.debug({ reason }, 'client certificate refused')
    fail('client_certificate')
  }

  /** resumeSession: answer from L1/L2, unless the client is about to negotiate TLS 1.3. */
  private resume (id: Buffer, done: (err: Error | null, der: Buffer | null) => void): void {
    const handshake = this.offering.get(id.toString('hex'))
    if (handshake?.hello?.offersTls13 === true) {
      done(null, null)
      return
    }
    this.cache.lookup(id).then((der) => {
      if (der !== null && handshake !== undefined) handshake.suppliedSession = true
      done(null, der)
    }, () => done(null, null))
  }
}

/** A TLS record: fatal alert unrecognized_name (112). */
const UNRECOGNIZED_NAME_ALERT = Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x70])

/** ALPN protocol names as OpenSSL takes them (each prefixed by its length), built once. */
function alpnWireFormat (protocols: string[]): Buffer {
  return Buffer.concat(protocols.map((p) => Buffer.concat([Buffer.from([Buffer.byteLength(p, 'latin1')]), Buffer.from(p, 'latin1')])))
}

function clientAddress (socket: net.Socket, preamble: Preamble): ProxyAddress | undefined {
  if (preamble.proxy !== undefined) return preamble.proxy.source
  if (socket.remoteAddress === undefined || socket.remotePort === undefined) return undefined
  return { address: socket.remoteAddress, port: socket.remotePort }
}

function localAddress (socket: net.Socket, preamble: Preamble): ProxyAddress | undefined {
  if (preamble.proxy !== undefined) return preamble.proxy.destination
  if (socket.localAddress === undefined || socket.localPort === undefined) return undefined
  return { address: socket.localAddress, port: socket.localPort }
}
