import { workerShare } from '../admission/connection-cap.js'
import type { Cidr } from '../config/cidr.js'
import type { HostPort } from '../config/host-port.js'
import type { NodeConfig } from '../config/options.js'
import type { ClientVerify } from '../tls/client-auth.js'
import type { TicketKeySet } from '../tls/ticket-key-ring.js'
import type { TlsPolicy } from '../tls/tls-policy.js'
import type { RunAs } from './privileges.js'

/** The part of the node configuration a worker needs; sent once in the `init` message. */
export interface WorkerSettings {
  listen: HostPort[]
  backend: HostPort
  acceptModel: 'reuseport' | 'shared'
  sessionTimeout: number
  /** --session-id-context; '' when not given (each certificate its own). */
  sessionIdContext: string
  l1Size: number
  cacheGetTimeoutMs: number
  proxyProtocolIn: 'off' | 'v1' | 'v2' | 'auto'
  /** --proxy-from: peers a PROXY header is believed from; empty or ['any'] = every peer. */
  proxyFrom: Array<Cidr | 'any'>
  /** --max-connections as given (node-wide), and this worker's share of it (0 = none). */
  maxConnections: number
  connectionShare: number
  /** This worker's share of --max-handshakes-per-source (0 = no cap). */
  handshakesPerSource: number
  proxyProtocolOut: 'off' | 'v1' | 'v2'
  handshakeTimeoutMs: number
  idleTimeoutMs: number
  /** Half-closed connections: their inactivity bound (0: the idle timeout's). */
  finTimeoutMs: number
  /** --tcp-keepalive in ms: idle time before keepalive probes on both sockets (0: no keepalive). */
  tcpKeepaliveMs: number
  connectTimeoutMs: number
  /** --backend-refresh in ms (0: a lookup per connection). */
  backendRefreshMs: number
  gracePeriodMs: number
  /** --session-tickets on: contexts issue and accept the farm's tickets (else SSL_OP_NO_TICKET). */
  sessionTickets: boolean
  /**
   * The ticket keys acceptable when this worker starts (later ones come in `ticket-keys`
   * messages), never the secret they derive from: the primary keeps that (ticket-key-ring.ts).
   */
  ticketKeys: TicketKeySet
  ticketRotationSeconds: number
  /** Versions, ciphers, curves: resolved and checked by the primary. */
  tlsPolicy: TlsPolicy
  clientVerify: ClientVerify
  /** ALPN protocols offered, most preferred first; empty = no ALPN. */
  alpn: string[]
  proxyTlv: NodeConfig['proxyTlv']
  sniNoMatch: 'default' | 'abort'
  /** Answer clients that ask for certificate status with the primary's OCSP staples. */
  ocspStapling: boolean
  /** Switch to this user once the listeners are bound (--user). */
  runAs?: RunAs
  logLevel: string
  logFormat: 'json' | 'pretty' | 'auto'
}

/** Settings but the ticket keys, which are those of the moment each worker starts. */
export type WorkerSettingsBase = Omit<WorkerSettings, 'ticketKeys'>

export function workerSettings (config: NodeConfig, backend: HostPort, tls: { policy: TlsPolicy; runAs: RunAs | undefined }): WorkerSettingsBase {
  return {
    listen: config.listen,
    backend,
    acceptModel: config.acceptModel,
    sessionTimeout: config.sessionTimeout,
    sessionIdContext: config.sessionIdContext,
    l1Size: config.l1Size,
    cacheGetTimeoutMs: config.cacheGetTimeout,
    proxyProtocolIn: config.proxyProtocolIn,
    proxyFrom: config.proxyFrom,
    maxConnections: config.maxConnections,
    connectionShare: workerShare(config.maxConnections, config.workers),
    handshakesPerSource: workerShare(config.maxHandshakesPerSource, config.workers),
    proxyProtocolOut: config.proxyProtocolOut,
    handshakeTimeoutMs: Math.round(config.handshakeTimeout * 1000),
    idleTimeoutMs: Math.round(config.idleTimeout * 1000),
    finTimeoutMs: Math.round(config.finTimeout * 1000),
    tcpKeepaliveMs: config.tcpKeepalive * 1000,
    connectTimeoutMs: Math.round(config.connectTimeout * 1000),
    backendRefreshMs: Math.round(config.backendRefresh * 1000),
    gracePeriodMs: Math.round(config.gracePeriod * 1000),
    sessionTickets: config.sessionTickets === 'on',
    ticketRotationSeconds: config.ticketRotation,
    tlsPolicy: tls.policy,
    clientVerify: config.clientVerify,
    alpn: config.alpn,
    proxyTlv: config.proxyTlv,
    sniNoMatch: config.sniNomatch,
    ocspStapling: config.ocspDir !== '',
    ...(tls.runAs !== undefined ? { runAs: tls.runAs } : {}),
    logLevel: config.logLevel,
    logFormat: config.logFormat
  }
}
