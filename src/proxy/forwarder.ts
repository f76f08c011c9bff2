import net from 'node:net'
import type { Duplex } from 'node:stream'
import type { HostPort } from '../config/host-port.js'
import { encodeProxyV1, encodeProxyV2, type ProxyAddress } from './proxy-protocol.js'
import type { ProxyTlv } from './proxy-tlv.js'

/** Where and how every connection of a worker is forwarded (one object per worker). */
export interface BackendTarget {
  /** The backend's address and how to connect to it: backendConnectOptions(backend). */
  connectOptions: net.NetConnectOpts
  proxyProtocolOut: 'off' | 'v1' | 'v2'
  connectTimeoutMs: number
  idleTimeoutMs: number
  onBackendError: (reason: 'connect_timeout' | 'connect_failed' | 'reset') => void
}

/** What a PROXY header going out says: the real client (from the PROXY header when present), the address it connected to, and TLVs. */
export interface ConnectionAddresses {
  source: ProxyAddress | undefined
  destination: ProxyAddress | undefined
  /** PROXY v2 only: TLVs after the addresses (ALPN, AUTHORITY, SSL). */
  tlvs?: ProxyTlv[]
}

/**
 * Connects to the backend and joins the decrypted client stream to it, both directions.
 * `pipe` gives back-pressure (a slow reader pauses the other side) and forwards each side's
 * end as a half-close, so a client that shuts its write side still gets the full response.
 * Either side failing, or no traffic for the idle timeout, tears both down. `addresses` is
 * only needed (and only looked up by the caller) when a PROXY header goes out.
 */
export function forwardToBackend (client: Duplex & { setTimeout: net.Socket['setTimeout'] }, target: BackendTarget, addresses?: ConnectionAddresses): void {
  const upstream = net.connect(target.connectOptions)
  let connected = false
  const destroyBoth = (): void => {
    client.destroy()
    upstream.destroy()
  }
  // Listeners with `on`, not `once`: each of these events comes once per socket, and a `once`
  // wrapper is an allocation per connection that the collector then has to move.
  upstream.setTimeout(target.connectTimeoutMs)
  upstream.on('timeout', () => {
    if (connected) return
    target.onBackendError('connect_timeout')
    destroyBoth()
  })
  upstream.on('connect', () => {
    connected = true
    upstream.setTimeout(0)
    const header = proxyHeader(target.proxyProtocolOut, addresses)
    if (header !== undefined) upstream.write(header)
    client.pipe(upstream)
    upstream.pipe(client)
    client.setTimeout(target.idleTimeoutMs)
    client.on('timeout', destroyBoth)
  })
  upstream.on('error', () => {
    target.onBackendError(connected ? 'reset' : 'connect_failed')
    destroyBoth()
  })
  client.on('error', destroyBoth)
  // Once both directions have ended the sockets close themselves; a close on one side
  // before that (reset, destroy) must not leave the other open.
  client.on('close', () => upstream.destroy())
  upstream.on('close', (hadError) => { if (hadError || !connected) client.destroy() })
}

/** net.connect's options for the target, made once per worker and shared by its connections (frozen: net.connect copies what it keeps). */
export function backendConnectOptions (backend: HostPort): net.NetConnectOpts {
  return Object.freeze({ host: backend.host, port: backend.port, allowHalfOpen: true, noDelay: true })
}

function proxyHeader (mode: BackendTarget['proxyProtocolOut'], addresses: ConnectionAddresses | undefined): Buffer | undefined {
  if (mode === 'off') return undefined
  if (mode === 'v2') return encodeProxyV2(addresses?.source, addresses?.destination, addresses?.tlvs)
  if (addresses?.source === undefined || addresses.destination === undefined) return Buffer.from('PROXY UNKNOWN\r\n')
  return encodeProxyV1(addresses.source, addresses.destination)
}
