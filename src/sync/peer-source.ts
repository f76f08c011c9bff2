import { lookup, Resolver } from 'node:dns/promises'
import net from 'node:net'
import os from 'node:os'
import { formatHostPort, type HostPort } from '../config/host-port.js'
import { isDnsPeer, type DnsPeer, type SyncPeer } from '../config/sync-peer.js'
import type { Logger } from '../util/logger.js'
import { peerFamilyOf, unmappedHost, type PeerFamily } from './sync-addresses.js'

/** Where the sync sends New/Del: asked on every send, so the list may change while the node runs. */
export interface PeerSource {
  list (): readonly HostPort[]
  close (): void
}

/** The most addresses one looked-up peer name adds to the peers. */
export const MAX_PEERS_PER_NAME = 64

/** DNS answers that mean "this name has no such records now" (the peers are gone), not a failure. */
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND'])

/**
 * The sync's peers: the `--sync-peer` addresses as given, plus, for each `dns:NAME:PORT`,
 * every A and AAAA record of NAME, looked up at start and every `refreshMs` (compose's service
 * names and Kubernetes headless services list their members this way). Peers that appear are
 * added and those that vanish dropped, without a restart. A lookup that fails (timeout, server
 * error) keeps the last answer. The node's own sync address is never in the list, nor an
 * address of a family the sync socket cannot send to (an AAAA record for a node listening on an
 * IPv4 address).
 *
 * `dns:` lookups are DNS queries (c-ares), to `server` when given, else to resolv.conf's
 * servers; /etc/hosts is not read. A peer given by host name (HOST:PORT) is looked up as the
 * system does (getaddrinfo: /etc/hosts, then DNS), at start and every `refreshMs` too, never
 * per datagram.
 */
export class DnsPeerSource implements PeerSource {
  private current: HostPort[] = []
  private readonly resolved = new Map<string, HostPort[]>()
  private readonly failing = new Set<string>()
  private readonly overCap = new Set<string>()
  private readonly resolver = new Resolver({ timeout: 1000, tries: 2 })
  private timer?: NodeJS.Timeout

  private readonly family: PeerFamily

  constructor (private readonly opts: { peers: SyncPeer[]; self: HostPort; refreshMs: number; server?: string; log: Logger }) {
    if (opts.server !== undefined && opts.server !== '') this.resolver.setServers([opts.server])
    this.family = peerFamilyOf(opts.self.host)
    this.current = this.merge()
  }

  /** First lookup (the warm join needs the peers), then the refresh timer. */
  async start (): Promise<void> {
    await this.refresh()
    this.timer = setInterval(() => { void this.refresh() }, this.opts.refreshMs)
    this.timer.unref()
  }

  list (): readonly HostPort[] { return this.current }

  close (): void {
    clearInterval(this.timer)
    this.resolver.cancel()
  }

  async refresh (): Promise<void> {
    await Promise.all(this.opts.peers.filter(isLookedUp).map(async (peer) => {
      if (isDnsPeer(peer)) await this.lookup(peer)
      else await this.lookupHost(peer)
    }))
    const next = this.merge()
    const before = new Set(this.current.map(formatHostPort))
    const after = new Set(next.map(formatHostPort))
    const added = [...after].filter((a) => !before.has(a))
    const removed = [...before].filter((a) => !after.has(a))
    this.current = next
    if (added.length > 0 || removed.length > 0) this.opts.log.info({ added, removed, peers: [...after] }, 'sync peers changed')
  }

  private async lookup (peer: DnsPeer): Promise<void> {
    const [v4, v6] = await Promise.allSettled([this.resolver.resolve4(peer.dns), this.resolver.resolve6(peer.dns)])
    const failure = [v4, v6].find((r): r is PromiseRejectedResult => r.status === 'rejected' && !NO_RECORDS.has((r.reason as { code?: string }).code ?? ''))
    const key = `${peer.dns}:${peer.port}`
    if (failure !== undefined) {
      // Keep the last answer: a DNS hiccup must not drop every peer.
      if (!this.failing.has(key)) this.opts.log.warn({ err: failure.reason as Error, peerName: peer.dns }, 'sync peer lookup failed: keeping the last known peers')
      this.failing.add(key)
      return
    }
    if (this.failing.delete(key)) this.opts.log.info({ peerName: peer.dns }, 'sync peer lookup answers again')
    const addresses = [v4, v6].flatMap((r) => r.status === 'fulfilled' ? r.value : [])
    this.resolved.set(key, this.bounded(key, peer.dns, addresses).map((host) => ({ host, port: peer.port })))
  }

  /**
   * Every New goes to every peer: whoever answers for the name must not decide how many
   * datagrams a handshake costs. The first MAX_PEERS_PER_NAME in address order (the same on
   * every node), and one warning while an answer is over it.
   */
  private bounded (key: string, name: string, addresses: string[]): string[] {
    if (addresses.length <= MAX_PEERS_PER_NAME) {
      this.overCap.delete(key)
      return addresses
    }
    if (!this.overCap.has(key)) this.opts.log.warn({ peerName: name, addresses: addresses.length, used: MAX_PEERS_PER_NAME }, `sync peer lookup answered more addresses than the ${MAX_PEERS_PER_NAME} used: the rest get no updates (for a farm this size, use --session-store or multicast)`)
    this.overCap.add(key)
    return [...addresses].sort().slice(0, MAX_PEERS_PER_NAME)
  }

  /** A HOST:PORT peer given by name: the system's lookup (getaddrinfo), kept when it fails. */
  private async lookupHost (peer: HostPort): Promise<void> {
    const key = `${peer.host}:${peer.port}`
    try {
      const addresses = await lookup(peer.host, { all: true })
      if (this.failing.delete(key)) this.opts.log.info({ peerName: peer.host }, 'sync peer lookup answers again')
      this.resolved.set(key, this.bounded(key, peer.host, addresses.map((a) => a.address)).map((host) => ({ host, port: peer.port })))
    } catch (err) {
      if (!this.failing.has(key)) this.opts.log.warn({ err, peerName: peer.host }, 'sync peer lookup failed: keeping the last known peers')
      this.failing.add(key)
    }
  }

  private merge (): HostPort[] {
    const all = this.opts.peers.flatMap((p): HostPort[] => {
      if (isDnsPeer(p)) return this.resolved.get(`${p.dns}:${p.port}`) ?? []
      return isLookedUp(p) ? this.resolved.get(`${p.host}:${p.port}`) ?? [] : [p]
    })
    const seen = new Set<string>()
    return all.filter((peer) => {
      const address = formatHostPort(peer)
      if (seen.has(address) || isSelf(peer, this.opts.self) || !reachable(peer.host, this.family)) return false
      seen.add(address)
      return true
    })
  }
}

/** A `dns:` peer, or a HOST:PORT peer given by name rather than address. */
function isLookedUp (peer: SyncPeer): boolean {
  return isDnsPeer(peer) || net.isIP(peer.host) === 0
}

function reachable (host: string, family: PeerFamily): boolean {
  if (family === 'any') return true
  return family === 'ipv4' ? net.isIPv4(unmappedHost(host)) : net.isIPv6(host) && !net.isIPv4(unmappedHost(host))
}

/** The peers as configured: a fixed list, or a DNS-backed one when any peer is `dns:`. */
export async function startPeerSource (opts: { peers: SyncPeer[]; self: HostPort; refreshMs: number; server?: string; log: Logger }): Promise<PeerSource> {
  const source = new DnsPeerSource(opts)
  if (opts.peers.some(isLookedUp)) await source.start()
  return source
}

/** Our own sync address: the listen address itself, or any local address when it listens on all. */
export function isSelf (peer: HostPort, self: HostPort): boolean {
  if (peer.port !== self.port) return false
  const host = unmappedHost(peer.host)
  if (host === unmappedHost(self.host)) return true
  if (self.host !== '0.0.0.0' && self.host !== '::') return false
  if (host.startsWith('127.') || host === '::1') return true
  return Object.values(os.networkInterfaces()).some((list) => list?.some((a) => unmappedHost(a.address) === host) === true)
}
