import net from 'node:net'
import type { HostPort } from '../config/host-port.js'
import type { ConnectLookup } from './backend-lookup.js'
import { encodeProxyV1, encodeProxyV2, type ProxyAddress } from './proxy-protocol.js'
import type { ProxyTlv } from './proxy-tlv.js'
import { DeadlineSweep, IdleSweep, sweepPeriodMs, type Activity, type HasDeadline } from '../util/sweep-timers.js'

/** Where and how every connection of a worker is forwarded (one object per worker: backendTarget). */
export interface BackendTarget {
  /** The backend's address and how to connect to it (frozen: net.connect copies what it keeps). */
  connectOptions: net.NetConnectOpts
  proxyProtocolOut: 'off' | 'v1' | 'v2'
  connectTimeoutMs: number
  onBackendError: (reason: 'connect_timeout' | 'connect_failed' | 'reset' | 'proxy_header') => void
  /** Backend connects under way, expired at the connect timeout. */
  connecting: DeadlineSweep<Forward>
  /** Joined connections, closed after the idle timeout without a byte in either direction. */
  idle: IdleSweep<Forward>
  /** Half-closed ones, with --fin-timeout (absent: they stay under the idle timeout). */
  halfClosed?: IdleSweep<Forward>
}

/** One connection being forwarded: both sockets, and what the two sweeps keep on it. */
interface Forward extends HasDeadline, Activity {
  client: net.Socket
  upstream: net.Socket
}

export interface BackendTargetOptions {
  backend: HostPort
  proxyProtocolOut: BackendTarget['proxyProtocolOut']
  connectTimeoutMs: number
  idleTimeoutMs: number
  /** Inactivity bound once one side has ended (0: the idle timeout's). */
  finTimeoutMs?: number
  /** TCP keepalive on the backend socket after this much silence (--tcp-keepalive; 0 or absent: none). */
  keepaliveMs?: number
  onBackendError: BackendTarget['onBackendError']
  /** The backend's name looked up once per --backend-refresh (backend-lookup.ts); absent: net.connect's own lookup per connection. */
  lookup?: ConnectLookup
}

/**
 * A worker's backend target, made once: the connect options, and the two sweeps that stand in
 * for a timer per connection (util/sweep-timers.ts). Idle is judged from the bytes read on both
 * sockets: whatever the client sends is read from it, whatever the backend answers is read from
 * the backend, so a forward that moves nothing either way keeps both counts still.
 */
export function backendTarget (opts: BackendTargetOptions): BackendTarget {
  return {
    // keepAlive in the options: Node sets it on the handle once connected, no code per connection here.
    connectOptions: Object.freeze({
      host: opts.backend.host,
      port: opts.backend.port,
      allowHalfOpen: true,
      noDelay: true,
      ...(opts.lookup !== undefined ? { lookup: opts.lookup } : {}),
      ...((opts.keepaliveMs ?? 0) > 0 ? { keepAlive: true, keepAliveInitialDelay: opts.keepaliveMs } : {})
    }),
    proxyProtocolOut: opts.proxyProtocolOut,
    connectTimeoutMs: opts.connectTimeoutMs,
    onBackendError: opts.onBackendError,
    connecting: new DeadlineSweep<Forward>(sweepPeriodMs(opts.connectTimeoutMs, 10), (forward) => {
      opts.onBackendError('connect_timeout')
      destroyBoth(forward)
    }),
    idle: new IdleSweep<Forward>(sweepPeriodMs(opts.idleTimeoutMs, 100), opts.idleTimeoutMs, bytesRead, destroyBoth),
    ...((opts.finTimeoutMs ?? 0) > 0
      ? { halfClosed: new IdleSweep<Forward>(sweepPeriodMs(opts.finTimeoutMs as number, 100), opts.finTimeoutMs as number, bytesRead, destroyBoth) }
      : {})
  }
}

function bytesRead (forward: Forward): number {
  return forward.client.bytesRead + forward.upstream.bytesRead
}

function destroyBoth (forward: Forward): void {
  forward.client.destroy()
  forward.upstream.destroy()
}

/**
 * Closes a connected socket with a TCP reset (SO_LINGER 0) instead of a FIN: a peer that
 * aborted must not look, to the other side, like one that ended its stream (a cut upload read
 * to its "end"). Not before the connection is up: Node would defer the reset until then.
 */
function reset (socket: net.Socket): void {
  if (socket.destroyed || socket.connecting) socket.destroy()
  else socket.resetAndDestroy()
}

/** What a PROXY header going out says: the real client (from the PROXY header when present), the address it connected to, and TLVs. */
export interface ConnectionAddresses {
  source: ProxyAddress | undefined
  destination: ProxyAddress | undefined
  /** 'unix': the balancer's client came through its Unix socket (paths, no ports). */
  family?: 'unix'
  /** PROXY v2 only: TLVs after the addresses (ALPN, AUTHORITY, SSL). */
  tlvs?: ProxyTlv[]
}

/**
 * Connects to the backend and joins the decrypted client stream to it, both directions.
 * `pipe` gives back-pressure (a slow reader pauses the other side) and forwards each side's
 * end as a half-close, so a client that shuts its write side still gets the full response.
 * A client's reset is passed on to the backend as a reset (see `reset`).
 * Either side failing, the backend not accepting within the connect timeout, or no traffic for
 * the idle timeout (the fin timeout once one side has ended) tears both down. `addresses` is
 * only needed (and only looked up by the caller) when a PROXY header goes out.
 */
export function forwardToBackend (client: net.Socket, target: BackendTarget, addresses?: ConnectionAddresses): void {
  const upstream = net.connect(target.connectOptions)
  const forward: Forward = { client, upstream, deadline: 0, sweepSlot: -1, activityCount: 0, activeAt: 0 }
  let connected = false
  target.connecting.add(forward, target.connectTimeoutMs)
  // Listeners with `on`, not `once`: each of these events comes once per socket, and a `once`
  // wrapper is an allocation per connection that the collector then has to move.
  upstream.on('connect', () => {
    connected = true
    target.connecting.delete(forward)
    let header: Buffer | undefined
    try {
      header = proxyHeader(target.proxyProtocolOut, addresses)
    } catch {
      // A header we cannot write (a bug of ours, never expected): this connection fails, not the worker.
      target.onBackendError('proxy_header')
      destroyBoth(forward)
      return
    }
    if (header !== undefined) upstream.write(header)
    client.pipe(upstream)
    upstream.pipe(client)
    target.idle.add(forward)
  })
  // A side that has sent its end: the connection is half-closed, and --fin-timeout bounds how
  // long it may stay so without traffic (a peer that never answers or never closes its side
  // holds two descriptors until then, not for the whole --idle-timeout). Only with the option:
  // the default path adds no closure nor listener per connection.
  const halfClosed = target.halfClosed
  if (halfClosed !== undefined) {
    const halfClose = (): void => {
      if (connected && target.idle.delete(forward)) halfClosed.add(forward)
    }
    client.on('end', halfClose)
    upstream.on('end', halfClose)
  }
  // Errors are dealt with at 'close', which follows every error (a socket destroys itself on
  // one): a shared listener that makes no closure, and none on the client, whose errors the
  // terminator already listens to.
  upstream.on('error', ignore)
  // Once both directions have ended the sockets close themselves; a close on one side
  // before that (reset, destroy) must not leave the other open. A client closed by an error
  // (it reset the connection, or broke TLS) gives the backend a reset too, as HAProxy does: a
  // FIN would tell it the client's stream had ended cleanly (a cut upload read to its "end").
  client.on('close', (hadError) => {
    if (hadError) reset(upstream)
    else upstream.destroy()
  })
  upstream.on('close', (hadError) => {
    if (hadError) target.onBackendError(connected ? 'reset' : 'connect_failed')
    target.connecting.delete(forward)
    target.idle.delete(forward)
    target.halfClosed?.delete(forward)
    if (hadError || !connected) client.destroy()
  })
}

function ignore (): void {}

function proxyHeader (mode: BackendTarget['proxyProtocolOut'], addresses: ConnectionAddresses | undefined): Buffer | undefined {
  if (mode === 'off') return undefined
  if (mode === 'v2') return encodeProxyV2(addresses?.source, addresses?.destination, addresses?.tlvs, addresses?.family === 'unix' ? 'unix' : 'ip')
  // v1 has no Unix family: "UNKNOWN" (the backend uses the connection's own addresses), as HAProxy sends.
  if (addresses?.source === undefined || addresses.destination === undefined || addresses.family === 'unix') return Buffer.from('PROXY UNKNOWN\r\n')
  return encodeProxyV1(addresses.source, addresses.destination)
}
