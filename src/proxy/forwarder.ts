import net from 'node:net'
import type { Duplex } from 'node:stream'
import type { HostPort } from '../config/host-port.js'
import { encodeProxyV1, encodeProxyV2, type ProxyAddress } from './proxy-protocol.js'
import type { ProxyTlv } from './proxy-tlv.js'

export interface ForwardOptions {
  backend: HostPort
  proxyProtocolOut: 'off' | 'v1' | 'v2'
  connectTimeoutMs: number
  idleTimeoutMs: number
  /** The real client (from the PROXY header when present) and the address it connected to. */
  source: ProxyAddress | undefined
  destination: ProxyAddress | undefined
  /** PROXY v2 only: TLVs after the addresses (ALPN, AUTHORITY, SSL). */
  tlvs?: ProxyTlv[]
  onBackendError: (reason: 'connect_timeout' | 'connect_failed' | 'reset') => void
}

/**
 * Connects to the backend and joins the decrypted client stream to it, both directions.
 * `pipe` gives back-pressure (a slow reader pauses the other side) and forwards each side's
 * end as a half-close, so a client that shuts its write side still gets the full response.
 * Either side failing, or no traffic for the idle timeout, tears both down.
 */
export function forwardToBackend (client: Duplex & { setTimeout: net.Socket['setTimeout'] }, opts: ForwardOptions): void {
  const upstream = net.connect({ host: opts.backend.host, port: opts.backend.port, allowHalfOpen: true, noDelay: true })
  let connected = false
  const destroyBoth = (): void => {
    client.destroy()
    upstream.destroy()
  }
  upstream.setTimeout(opts.connectTimeoutMs, () => {
    if (!connected) {
      opts.onBackendError('connect_timeout')
      destroyBoth()
    }
  })
  upstream.once('connect', () => {
    connected = true
    upstream.setTimeout(0)
    const header = proxyHeader(opts)
    if (header !== undefined) upstream.write(header)
    client.pipe(upstream)
    upstream.pipe(client)
    client.setTimeout(opts.idleTimeoutMs, destroyBoth)
  })
  upstream.on('error', () => {
    opts.onBackendError(connected ? 'reset' : 'connect_failed')
    destroyBoth()
  })
  client.on('error', destroyBoth)
  // Once both directions have ended the sockets close themselves; a close on one side
  // before that (reset, destroy) must not leave the other open.
  client.once('close', () => upstream.destroy())
  upstream.once('close', (hadError) => { if (hadError || !connected) client.destroy() })
}

function proxyHeader (opts: ForwardOptions): Buffer | undefined {
  if (opts.proxyProtocolOut === 'off') return undefined
  if (opts.proxyProtocolOut === 'v2') return encodeProxyV2(opts.source, opts.destination, opts.tlvs)
  if (opts.source === undefined || opts.destination === undefined) return Buffer.from('PROXY UNKNOWN\r\n')
  return encodeProxyV1(opts.source, opts.destination)
}
