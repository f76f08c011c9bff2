import type { HostPort } from '../config/host-port.js'
import type { NodeConfig } from '../config/options.js'

/** The part of the node configuration a worker needs; sent once in the `init` message. */
export interface WorkerSettings {
  listen: HostPort[]
  backend: HostPort
  acceptModel: 'reuseport' | 'shared'
  sessionTimeout: number
  sessionIdContext: string
  l1Size: number
  cacheGetTimeoutMs: number
  proxyProtocolIn: 'off' | 'v1' | 'v2' | 'auto'
  proxyProtocolOut: 'off' | 'v1' | 'v2'
  handshakeTimeoutMs: number
  idleTimeoutMs: number
  connectTimeoutMs: number
  gracePeriodMs: number
  /** Secrets the ticket keys derive from, current first; empty = session tickets off. */
  ticketSecrets: Buffer[]
  ticketRotationSeconds: number
  logLevel: string
  logFormat: 'json' | 'pretty' | 'auto'
}

export function workerSettings (config: NodeConfig, backend: HostPort, ticketSecrets: Buffer[]): WorkerSettings {
  return {
    listen: config.listen,
    backend,
    acceptModel: config.acceptModel,
    sessionTimeout: config.sessionTimeout,
    sessionIdContext: config.sessionIdContext,
    l1Size: config.l1Size,
    cacheGetTimeoutMs: config.cacheGetTimeout,
    proxyProtocolIn: config.proxyProtocolIn,
    proxyProtocolOut: config.proxyProtocolOut,
    handshakeTimeoutMs: Math.round(config.handshakeTimeout * 1000),
    idleTimeoutMs: Math.round(config.idleTimeout * 1000),
    connectTimeoutMs: Math.round(config.connectTimeout * 1000),
    gracePeriodMs: Math.round(config.gracePeriod * 1000),
    ticketSecrets,
    ticketRotationSeconds: config.ticketRotation,
    logLevel: config.logLevel,
    logFormat: config.logFormat
  }
}
