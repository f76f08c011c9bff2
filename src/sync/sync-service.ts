import crypto from 'node:crypto'
import dgram from 'node:dgram'
import { EventEmitter } from 'node:events'
import net from 'node:net'
import os from 'node:os'
import { Counter, type Registry } from 'prom-client'
import type { PrimarySessionCache } from '../cache/primary-session-cache.js'
import type { SessionEntry } from '../cache/session-store.js'
import { formatHostPort, type HostPort } from '../config/host-port.js'
import { ConfigError, ListenError } from '../errors.js'
import type { Logger } from '../util/logger.js'
import { DatagramBatcher } from './batcher.js'
import type { DecodedPacket, SyncCodec, SyncMessage } from './codecs.js'
import { kernelDrops } from './kernel-drops.js'
import type { PeerSource } from './peer-source.js'
import { refusalWarning, RefusalWarnings, warnsAbout } from './refusal-warning.js'
import { REJECT_REASONS, type RejectReason } from './reject-reasons.js'
import { SnapshotGate, type SnapshotRefusal } from './snapshot-gate.js'
import { isMulticast, unmappedHost } from './sync-addresses.js'
import { JOIN_SETTLE_MS, WarmJoin, type JoinStep } from './warm-join.js'
import { PacketTooBigError, snapshotEntryBytes, V2_OVERHEAD_BYTES, type RefusalDetail, type SnapshotEntry } from './wire-v2.js'

export interface SyncOptions {
  listen: HostPort
  /** Asked on every send: the list may change while the node runs (dns: peers). */
  peers: PeerSource
  /** `IFACE[,TTL]` for multicast; empty = default interface, TTL 1. */
  multicastInterface: string
  /** The wire format: what a datagram looks like and what makes one trusted. */
  codec: SyncCodec
  /** SO_RCVBUF asked of the kernel (capped by net.core.rmem_max): room for bursts. */
  recvBufferBytes: number
}

/** Per-sender (or per-peer) counters for /v1/peers; packets are updates (a batch datagram carries several). */
export interface PeerStats {
  /** The row's address; in multicast, where rows are nodes, the one it was last heard from. */
  address: string
  nodeId?: string
  /** Multicast: every address the node was heard from (the group port it shares with the nodes of its host, its snapshot socket). */
  addresses?: string[]
  configured: boolean
  lastSeen?: string
  packetsIn: number
  packetsOut: number
  sendErrors: number
  rejected: Partial<Record<RejectReason, number>>
}

/**
 * PeerStats as kept: the time as a number, made a date only when someone asks; `configured` is
 * decided then too (DNS peers come and go). `warnedMs`: when each refusal was last logged.
 */
type PeerCounters = Omit<PeerStats, 'lastSeen' | 'configured'> & { lastSeenMs?: number; warnedMs?: Partial<Record<RejectReason, number>> }

/**
 * A node's last accepted packets (their sequence numbers, and the address each came from): a
 * copy of one arriving through another of our addresses is a duplicate, not a replay.
 */
interface RecentlyAccepted { from: Map<bigint, string>; atMs: number }

type InResult = RejectReason

/** What became of the snapshot requests that authenticated (snapshot-gate.ts). */
type SnapshotResult = 'challenged' | 'answered' | SnapshotRefusal
const SNAPSHOT_RESULTS: readonly SnapshotResult[] = ['challenged', 'answered', 'bad_cookie', 'rate_limited']

/** Counts behind tlsfleet_sync_packets_total and _datagrams_total: a datagram can hold many packets. */
class SyncCounts {
  /** Accepted packets (the common case: a field), and the refused ones by reason. */
  packetsAccepted = 0
  readonly packetsIn = new Map<InResult, number>(REJECT_REASONS.map((r): [InResult, number] => [r, 0]))
  packetsSent = 0
  packetsSendError = 0
  /** Updates that fit in no packet of the format (a New holding a large client certificate). */
  packetsTooBig = 0
  datagramsIn = 0
  datagramsSent = 0
  datagramsSendError = 0
  /** The kernel's count for our sockets, as last read: never lower than before. */
  datagramsDroppedKernel = 0
  readonly snapshotRequests = new Map<SnapshotResult, number>(SNAPSHOT_RESULTS.map((r): [SnapshotResult, number] => [r, 0]))
}

/** What a warm join brought, and the packets refused meanwhile (a responder with another secret answers nothing we can open). */
export interface WarmJoinResult {
  sessions: number
  responders: number
  refused: Partial<Record<RejectReason, number>>
}

/** This node's warm join under way, and what to do when it takes a step. */
interface JoinAttempt {
  join: WarmJoin
  onStep: (step: JoinStep) => void
}

/** How old the kernel's drop count may be when scraped (reading /proc costs a directory listing). */
const KERNEL_DROPS_MAX_AGE_MS = 1000

/** Largest snapshot datagram we send; fits loopback and jumbo-free LANs after IP fragmentation. */
const SNAPSHOT_PACKET_BYTES = 16_000

/**
 * The farm sync in the primary: one UDP socket, New/Del to every peer (or the multicast group),
 * and what comes in is decoded by the format's codec (authenticated, checked) and only then put
 * into L2. Sends are fire-and-forget: a dead or slow peer costs a counter, never a handshake.
 * A rejected packet increments `tlsfleet_sync_packets_total{direction="in",result=<reason>}`;
 * a sender none of whose packets was accepted is also warned about, rate-limited (warnRefused).
 *
 * Snapshots (the warm join) take a round trip that proves the requester's address before any
 * session data goes to it (snapshot-gate.ts). They run over the sync socket; with multicast, over
 * a second, unicast socket on a port of its own, because nodes on one host share the group's
 * port and so the group socket's address does not name one node.
 */
export class SyncService extends EventEmitter<{ 'remote-del': [id: Buffer] }> {
  private socket?: dgram.Socket
  /** Where snapshot requests, challenges and chunks are sent from and answered to. */
  private snapshotSocket?: dgram.Socket
  private readonly multicast: boolean
  /** Unicast from [::]: IPv4 peers are sent to as IPv4-mapped addresses. */
  private readonly dualStack: boolean
  /** Peers whose last send failed, each logged once until a send works again. */
  private readonly failingTargets = new Set<string>()
  /** Senders of packets with our node id that are not us (checkOwnSender), each logged once. */
  private readonly ownIdSenders = new Set<string>()
  /** This machine's addresses as last read (isLocalAddress). */
  private localAddresses?: Set<string>
  private readonly codec: SyncCodec
  private readonly counts = new SyncCounts()
  private warnedTooBig = false
  private readonly batcher?: DatagramBatcher
  /**
   * Per address: our peers, and senders of at least one authenticated packet. In multicast, per
   * node id instead: the nodes of one host all send from the group's port, so an address is no node.
   */
  private readonly peers = new Map<string, PeerCounters>()
  /** Multicast: the node id last authenticated from each address (its row in `peers`). */
  private readonly nodeAt = new Map<string, string>()
  /** Per node id (v2, unicast), the packets last accepted from it. */
  private readonly recentlyAccepted = new Map<string, RecentlyAccepted>()
  /** Bumped when an address turns out to be another node's: the targets are deduplicated again. */
  private nodeIdsChanged = 0
  private uniqueTargets: { from?: readonly HostPort[]; changes: number; targets: readonly HostPort[] } = { changes: -1, targets: [] }
  /** Per node id: which of its addresses gets our updates (distinctTargets), moved on by its duplicates. */
  private readonly rotation = new Map<string, number>()
  private readonly refusalWarnings = new RefusalWarnings()
  /**
   * Per address, senders of nothing authenticated yet (forged, damaged, another farm's): kept
   * apart and bounded, the oldest forgotten first, so a flood from many source addresses cannot
   * crowd real peers out of /v1/peers.
   */
  private readonly strangers = new Map<string, PeerCounters>()
  /** The last datagram sender's address, its HOST:PORT key and whether it is our own socket (addressKey). */
  private lastAddress = { address: '', port: -1, key: '', ownSocket: false }
  /** The ports our sync sockets are bound to (start), to tell our own multicast echo by its source. */
  private ownPorts = new Set<number>()
  private readonly gate = new SnapshotGate()
  private join?: JoinAttempt
  private kernelDropsReadAtMs = -Infinity

  constructor (
    private readonly opts: SyncOptions,
    private readonly cache: PrimarySessionCache,
    private readonly log: Logger,
    registry: Registry
  ) {
    super()
    this.codec = opts.codec
    this.multicast = isMulticast(opts.listen.host)
    this.dualStack = !this.multicast && opts.listen.host === '::'
    for (const peer of opts.peers.list()) this.peerStats(formatHostPort(peer))
    if (this.codec.batching !== undefined) {
      this.batcher = new DatagramBatcher(this.codec.batching, (datagram, updates) => this.sendToAll(datagram, updates))
    }
    // Counted as plain numbers (up to 100k packets a second) and copied when scraped.
    const counts = this.counts
    const readKernelDrops = (): number => this.readKernelDrops()
    new Counter({
      name: 'tlsfleet_sync_packets_total',
      help: 'Farm sync packets (one per update: New, Del, snapshot) by direction and result (accepted, sent, send_error, too_big: an update no packet of the format can hold, not sent; or the reason a packet was rejected); in/dropped_kernel counts whole datagrams the kernel dropped on our sync sockets (full receive buffer, from /proc/net/udp), whose packets are unknown',
      labelNames: ['direction', 'result'] as const,
      registers: [registry],
      collect () {
        this.reset()
        this.inc({ direction: 'in', result: 'accepted' }, counts.packetsAccepted)
        for (const [result, n] of counts.packetsIn) this.inc({ direction: 'in', result }, n)
        this.inc({ direction: 'in', result: 'dropped_kernel' }, readKernelDrops())
        this.inc({ direction: 'out', result: 'sent' }, counts.packetsSent)
        this.inc({ direction: 'out', result: 'send_error' }, counts.packetsSendError)
        this.inc({ direction: 'out', result: 'too_big' }, counts.packetsTooBig)
      }
    })
    new Counter({
      name: 'tlsfleet_sync_datagrams_total',
      help: 'Farm sync UDP datagrams by direction and result (received, dropped_kernel: lost in our socket\'s full receive buffer, as /proc/net/udp counts them; sent, send_error); a v2 datagram carries one packet or a batch of them',
      labelNames: ['direction', 'result'] as const,
      registers: [registry],
      collect () {
        this.reset()
        this.inc({ direction: 'in', result: 'received' }, counts.datagramsIn)
        this.inc({ direction: 'in', result: 'dropped_kernel' }, readKernelDrops())
        this.inc({ direction: 'out', result: 'sent' }, counts.datagramsSent)
        this.inc({ direction: 'out', result: 'send_error' }, counts.datagramsSendError)
      }
    })
    new Counter({
      name: 'tlsfleet_sync_snapshot_requests_total',
      help: 'Authenticated snapshot requests by result: challenged (a cookie sent back, no bigger than the request), answered (the cookie came back from the same address: the snapshot sent), bad_cookie, rate_limited',
      labelNames: ['result'] as const,
      registers: [registry],
      collect () {
        this.reset()
        for (const [result, n] of counts.snapshotRequests) this.inc({ result }, n)
      }
    })
  }

  /** Where New/Del go now: the multicast group, or the peers as the peer source has them. */
  private get targets (): readonly HostPort[] {
    return this.multicast ? [this.opts.listen] : this.opts.peers.list()
  }

  async start (): Promise<void> {
    const { host, port } = this.opts.listen
    const type = net.isIPv6(host) ? 'udp6' : 'udp4'
    const any = type === 'udp6' ? '::' : '0.0.0.0'
    // Resolve the interface before binding: a wrong name is a configuration error, not a crash.
    const iface = this.multicast ? multicastInterface(this.opts.multicastInterface, type) : undefined
    // A multicast receiver binds the group's address (and port), then joins the group. Not the
    // port on every address: Linux hands such a socket the datagrams of every group any socket
    // of this host joined on that port (IP_MULTICAST_ALL), so another farm on the same host and
    // port (another group, another secret) would be decoded and refused here packet by packet.
    const address = iface !== undefined ? groupBindAddress(host, iface) : host
    const socket = await this.bindSocket(type, { port, address }, '--sync-listen', formatHostPort(this.opts.listen))
    this.socket = socket
    this.snapshotSocket = socket
    if (iface !== undefined) {
      this.joinGroup(socket, host, iface)
      if (this.codec.snapshots) {
        const address = iface.address ?? any
        this.snapshotSocket = await this.bindSocket(type, { port: 0, address }, '--sync-interface', address)
        this.sendOnInterface(this.snapshotSocket, iface)
      }
    }
    this.ownPorts = new Set([socket, this.snapshotSocket].map((s) => s.address().port))
    this.codec.start?.()
    if (this.codec.format === 'stud') {
      this.log.warn('sync format "stud": sessions (with their master secrets) cross the network in clear, and packets have no replay protection; use it only to migrate from hitch/stud, on a trusted network')
    }
    this.log.info({ listen: formatHostPort(this.opts.listen), multicast: this.multicast, peers: this.opts.peers.list().map(formatHostPort), format: this.codec.format, ...(this.codec.sealedWith !== undefined ? { sealedWith: this.codec.sealedWith } : {}), ...(this.codec.farmKey !== undefined ? { farmKeyId: this.codec.farmKey.id, farmKeyFingerprint: this.codec.farmKey.fingerprint } : {}), ...(this.snapshotSocket !== socket ? { snapshots: formatHostPort({ host: this.snapshotSocket.address().address, port: this.snapshotSocket.address().port }) } : {}) }, 'farm sync listening')
  }

  private async bindSocket (type: 'udp4' | 'udp6', at: { port: number; address: string }, option: string, shown: string): Promise<dgram.Socket> {
    const socket = dgram.createSocket({ type, reuseAddr: this.multicast && at.port !== 0 })
    socket.on('message', (datagram, rinfo) => this.onDatagram(datagram, rinfo))
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(at, () => {
        socket.removeListener('error', reject)
        resolve()
      })
    }).catch((err: unknown) => {
      socket.close()
      throw new ListenError(option, shown, err)
    })
    socket.on('error', (err) => this.log.error({ err }, 'sync socket error'))
    this.sizeReceiveBuffer(socket)
    return socket
  }

  /**
   * What the kernel dropped on our sockets because their receive buffers were full (datagrams),
   * read from /proc at most once a second (both counters that show it ask at each scrape); kept
   * at its highest so the counter never goes back.
   */
  private readKernelDrops (): number {
    const nowMs = Date.now()
    if (nowMs - this.kernelDropsReadAtMs < KERNEL_DROPS_MAX_AGE_MS) return this.counts.datagramsDroppedKernel
    this.kernelDropsReadAtMs = nowMs
    let total: number | undefined
    for (const socket of new Set([this.socket, this.snapshotSocket])) {
      let port: number
      try { port = socket?.address().port ?? -1 } catch { continue } // closed
      const drops = port < 0 ? undefined : kernelDrops(port)
      if (drops !== undefined) total = (total ?? 0) + drops
    }
    if (total !== undefined && total > this.counts.datagramsDroppedKernel) this.counts.datagramsDroppedKernel = total
    return this.counts.datagramsDroppedKernel
  }

  /**
   * Bursts (a warm join's snapshot, a peer's batch of updates, a moment when this process is
   * busy) wait in the socket's receive buffer; UDP has no back-pressure, so what does not fit
   * is lost. The kernel caps the size at net.core.rmem_max: say so when it gave less.
   */
  private sizeReceiveBuffer (socket: dgram.Socket): void {
    const wanted = this.opts.recvBufferBytes
    try { socket.setRecvBufferSize(wanted) } catch (err) { this.log.warn({ err }, 'sync: could not set the receive buffer size') }
    let got: number | undefined
    try { got = socket.getRecvBufferSize() } catch { /* not bound */ }
    // Linux reports twice what it grants (bookkeeping space included).
    if (got !== undefined && got < wanted) {
      this.log.warn({ wantedBytes: wanted, grantedBytes: got }, 'sync: the kernel granted a smaller receive buffer than --sync-recv-buffer asks (raise net.core.rmem_max); bursts may be lost')
    } else {
      this.log.debug({ grantedBytes: got }, 'sync receive buffer')
    }
  }

  /** Send this node's new session to the farm (called for sessions made by our own workers). */
  publishNew (id: Buffer, entry: SessionEntry): void {
    this.sendMessage({ op: 'new', sessionId: id, session: entry.der, createdAt: entry.createdAt })
  }

  publishDel (id: Buffer): void {
    this.sendMessage({ op: 'del', sessionId: id })
  }

  /**
   * Warm join: ask the peers (or the group) for their live sessions, echo each responder's
   * challenge, and wait until every responder has sent its last chunk (warm-join.ts says when
   * that is enough), or the timeout passes. A node alone starts anyway.
   */
  async warmJoin (timeoutMs: number): Promise<WarmJoinResult> {
    const via = this.snapshotSocket
    if (!this.codec.snapshots || via === undefined || this.targets.length === 0 || timeoutMs <= 0) return { sessions: 0, responders: 0, refused: {} }
    const before = new Map(this.counts.packetsIn)
    // Random: a chunk or challenge is accepted only for this id, so one from before a restart is refused.
    const join = new WarmJoin(crypto.randomBytes(4).readUInt32BE(0), this.multicast ? undefined : this.targets.length)
    return await new Promise((resolve) => {
      let settle: NodeJS.Timeout | undefined
      const finish = (): void => {
        clearTimeout(timer)
        clearTimeout(settle)
        if (this.join?.join === join) this.join = undefined
        resolve({ sessions: join.sessions, responders: join.responders, refused: this.refusedSince(before) })
      }
      const timer = setTimeout(finish, timeoutMs)
      const onStep = (step: JoinStep): void => {
        clearTimeout(settle)
        if (step === 'finish') finish()
        // Ends then unless another responder turned up meanwhile and is not done.
        else if (step === 'settle') settle = setTimeout(() => { if (join.step() !== 'wait') finish() }, JOIN_SETTLE_MS)
      }
      this.join = { join, onStep }
      this.sendMessage({ op: 'snapshot-request', requestId: join.requestId }, { via })
    })
  }

  /** Packets refused since `before` (a copy of counts.packetsIn), by the reasons that say something is wrong. */
  private refusedSince (before: ReadonlyMap<RejectReason, number>): Partial<Record<RejectReason, number>> {
    const refused: Partial<Record<RejectReason, number>> = {}
    for (const [reason, n] of this.counts.packetsIn) {
      const more = n - (before.get(reason) ?? 0)
      if (more > 0 && warnsAbout(reason)) refused[reason] = more
    }
    return refused
  }

  /**
   * One row per peer address; in multicast one per node (by its authenticated id), the group
   * being the configuration: a node heard in it is configured. Senders of nothing authenticated
   * follow, by address.
   */
  peerList (): PeerStats[] {
    const configured = new Set(this.multicast ? [] : this.opts.peers.list().map((p) => formatHostPort({ host: unmappedHost(p.host), port: p.port })))
    const strangers = [...this.strangers.values()].map((stats) => ({ stats, configured: false }))
    const peers = [...this.peers.values()].map((stats) => ({ stats, configured: this.multicast ? stats.nodeId !== undefined : configured.has(stats.address) }))
    const rows = [...peers, ...strangers].map(({ stats: { lastSeenMs, warnedMs: _warned, addresses, ...stats }, configured }) => ({
      ...stats,
      ...(addresses !== undefined ? { addresses: [...addresses] } : {}),
      configured,
      ...(lastSeenMs !== undefined ? { lastSeen: new Date(lastSeenMs).toISOString() } : {})
    }))
    return this.multicast ? rows : byNode(rows)
  }

  /** Stops receiving; the codec's last words (the replay state's final save) in the same turn, so nothing is accepted after them. */
  async close (): Promise<void> {
    const socket = this.socket
    if (socket === undefined) return
    this.batcher?.flush()
    const snapshotSocket = this.snapshotSocket
    this.socket = undefined
    this.snapshotSocket = undefined
    this.codec.close?.()
    const closing = [socket, ...(snapshotSocket !== undefined && snapshotSocket !== socket ? [snapshotSocket] : [])]
    await Promise.all(closing.map(async (s) => { await new Promise<void>((resolve) => s.close(() => resolve())) }))
  }

  /** To `to` (else to every target: New/Del through the batcher), from `via` (else the sync socket). */
  private sendMessage (message: SyncMessage, route: { to?: HostPort; via?: dgram.Socket; row?: string } = {}): void {
    let packet: Buffer | undefined
    try {
      packet = this.codec.encode(message)
    } catch (err) {
      if (!(err instanceof PacketTooBigError)) {
        this.log.debug({ err, op: message.op }, 'sync message not sendable')
        return
      }
      this.counts.packetsTooBig++
      if (!this.warnedTooBig) {
        this.log.warn({ op: err.op, bytes: err.bytes, limit: err.limit }, 'sync: a session too big for one sync packet is not shared with the peers (a client certificate in the session makes it large; counted in tlsfleet_sync_packets_total{direction="out",result="too_big"}; --session-store has no such limit)')
        this.warnedTooBig = true
      }
      return
    }
    if (packet === undefined) return // the format does not carry this operation
    if (route.to !== undefined) this.send(packet, 1, route.to, route.via, route.row)
    else if (this.batcher !== undefined && (message.op === 'new' || message.op === 'del')) this.batcher.add(packet)
    else this.sendToAll(packet, 1, route.via)
  }

  private sendToAll (datagram: Buffer, updates: number, via?: dgram.Socket): void {
    for (const target of this.distinctTargets()) this.send(datagram, updates, target, via)
  }

  /**
   * The targets, one per node: a peer found by name on a dual-stack farm is listed twice (its A
   * and its AAAA record), and each copy would reach it, the second refused as a duplicate. DNS
   * does not say which records are one node (a headless service lists its members' records
   * apart), and preferring one family per name would drop the nodes that only have the other; so
   * the sync learns it from authenticated packets (the address a node sends from towards each of
   * ours) and sends to one address of each node it knows: the first listed, or the next one
   * after the node sent us a duplicate (it has not yet heard us from all our addresses, and
   * learns the one we send from). Until it has heard a node from two addresses, both get updates.
   */
  private distinctTargets (): readonly HostPort[] {
    const all = this.targets
    if (all.length < 2) return all
    const memo = this.uniqueTargets
    if (memo.from === all && memo.changes === this.nodeIdsChanged) return memo.targets
    const nodeOf = all.map((target) => this.peers.get(formatHostPort({ host: unmappedHost(target.host), port: target.port }))?.nodeId)
    const byNode = new Map<string, HostPort[]>()
    all.forEach((target, i) => {
      const nodeId = nodeOf[i]
      if (nodeId !== undefined) byNode.set(nodeId, [...byNode.get(nodeId) ?? [], target])
    })
    const targets: HostPort[] = []
    all.forEach((target, i) => {
      const nodeId = nodeOf[i]
      const same = nodeId !== undefined ? byNode.get(nodeId) : undefined
      if (nodeId === undefined || same === undefined) targets.push(target)
      else if (same[0] === target) targets.push(same[(this.rotation.get(nodeId) ?? 0) % same.length] as HostPort)
    })
    this.uniqueTargets = { from: all, changes: this.nodeIdsChanged, targets }
    return targets
  }

  /**
   * A node's duplicate came from `from`: that address is the node's too (the packet is
   * authenticated), and the node has not heard us from every address of ours: our next
   * datagram to it goes to its next address, so it hears us from there.
   */
  private copySeen (from: string, nodeId: string): void {
    if (this.multicast) return
    const row = this.peerStats(from)
    if (row.address === from) row.nodeId = nodeId
    if (this.rotation.has(nodeId) || this.rotation.size < MAX_PEERS) this.rotation.set(nodeId, (this.rotation.get(nodeId) ?? 0) + 1)
    this.nodeIdsChanged++
  }

  private send (datagram: Buffer, updates: number, target: HostPort, via = this.socket, row?: string): void {
    if (via === undefined) return
    const multicast = this.multicast && target === this.opts.listen
    const key = multicast ? undefined : formatHostPort({ host: unmappedHost(target.host), port: target.port })
    const stats = key === undefined ? undefined : this.peerStats(row ?? key, key)
    // A socket on [::] reaches IPv4 peers only by their IPv4-mapped address (EINVAL otherwise).
    const host = this.dualStack && net.isIPv4(target.host) ? `::ffff:${target.host}` : target.host
    via.send(datagram, target.port, host, (err) => {
      if (err !== null && err !== undefined) {
        this.counts.datagramsSendError++
        this.counts.packetsSendError += updates
        if (stats !== undefined) stats.sendErrors += updates
        this.sendFailed(key ?? formatHostPort(target), err)
      } else {
        this.counts.datagramsSent++
        this.counts.packetsSent += updates
        if (stats !== undefined) stats.packetsOut += updates
        if (this.failingTargets.size > 0 && this.failingTargets.delete(key ?? formatHostPort(target))) {
          this.log.info({ peer: key ?? formatHostPort(target) }, 'sync: sending to the peer works again')
        }
      }
    })
  }

  /** Logged once per target until a send to it works again (counted per datagram in /metrics). */
  private sendFailed (target: string, err: Error): void {
    if (this.failingTargets.has(target) || this.failingTargets.size >= MAX_PEERS) return
    this.failingTargets.add(target)
    this.log.warn({ peer: target, err }, 'sync: sending to the peer fails (logged once until it works again)')
  }

  /** A datagram: every packet in it is judged, counted and applied on its own. */
  private onDatagram (datagram: Buffer, rinfo: dgram.RemoteInfo): void {
    this.counts.datagramsIn++
    // The key once per datagram, not per packet: a batch comes from one sender.
    const from = this.addressKey(rinfo)
    for (const result of this.codec.decode(datagram, this.lastAddress.ownSocket)) this.onPacket(result, from, rinfo)
  }

  private onPacket (result: DecodedPacket, from: string, rinfo: dgram.RemoteInfo): void {
    if (!result.ok) {
      // Our own multicast echo is expected, not an attack: counted, but not per peer.
      if (result.reason === 'own') {
        this.count('own')
        // v2 knows a packet is ours by its node id; stud only by a session ID we just sent.
        if (result.twin === true) this.twinSeen(from)
        else if (this.codec.format === 'v2') this.checkOwnSender(rinfo)
        return
      }
      if (this.isCopy(from, result)) {
        this.copySeen(from, result.sender as string)
        return this.reject(from, 'duplicate', result)
      }
      return this.reject(from, result.reason, result)
    }
    const message = result.message
    switch (message.op) {
      case 'new':
        this.accept(from, result.sender, result.sequence)
        this.cache.addRemote(message.sessionId, { der: message.session, createdAt: message.createdAt })
        break
      case 'del':
        this.accept(from, result.sender, result.sequence)
        // Told to the workers even when L2 no longer holds it: L1 hits never touch L2, so L2
        // evicts first the very sessions the workers' L1 serve. A Del comes only from an
        // authenticated peer, which could make L2 hold the session first anyway (a New).
        this.cache.deleteRemote(message.sessionId)
        this.emit('remote-del', message.sessionId)
        break
      case 'snapshot-request':
        this.accept(from, result.sender, result.sequence)
        this.answerRequest(message, { host: rinfo.address, port: rinfo.port }, result.sender ?? '')
        break
      case 'snapshot-challenge': {
        // Echoed once per responder, only for our warm join under way; anything else answers nothing of ours.
        const join = this.join?.join
        const responder = { host: rinfo.address, port: rinfo.port }
        if (join === undefined || message.requestId !== join.requestId || !join.challenged(this.addressKey(rinfo))) return this.reject(from, 'unsolicited')
        this.accept(from, result.sender, result.sequence)
        this.sendMessage({ op: 'snapshot-request', requestId: message.requestId, cookie: message.cookie }, { to: responder, ...this.snapshotVia(), ...this.rowOfNode(result.sender) })
        break
      }
      case 'snapshot-chunk': {
        const attempt = this.join
        if (attempt === undefined || message.requestId !== attempt.join.requestId) return this.reject(from, 'unsolicited')
        this.accept(from, result.sender, result.sequence)
        for (const s of message.sessions) this.cache.addRemote(s.sessionId, { der: s.session, createdAt: s.createdAt })
        attempt.onStep(attempt.join.chunk(this.addressKey(rinfo), message.sessions.length, message.last))
        break
      }
    }
  }

  /**
   * A packet with this node's id is our own multicast echo, from one of our sockets. From
   * anywhere else it is another node started with the same --node-id: their updates are
   * skipped here as our own, and their peers mix the two up in one replay window (one refuses
   * the other's packets as replays). Said once per sender address.
   */
  private checkOwnSender (rinfo: dgram.RemoteInfo): void {
    const key = this.addressKey(rinfo)
    if (this.ownIdSenders.has(key) || this.ownIdSenders.size >= MAX_PEERS) return
    const ports = [this.socket, this.snapshotSocket].map((s) => { try { return s?.address().port } catch { return undefined } })
    if (ports.includes(rinfo.port) && this.isLocalAddress(unmappedHost(rinfo.address))) return
    this.ownIdSenders.add(key)
    this.log.error({ from: key }, 'a farm sync packet carrying this node\'s id came from another address: two nodes share one --node-id (each ignores the other\'s updates, and peers refuse one of them as replays); give every node its own')
  }

  /**
   * Whether `host` is one of this machine's addresses. Every multicast packet we send comes
   * back here, and reading the interfaces is a getifaddrs() (~20 µs, more with many
   * interfaces): they are read once and again only for an address not among them, which
   * checkOwnSender then remembers in ownIdSenders.
   */
  private isLocalAddress (host: string): boolean {
    if (this.localAddresses?.has(host) === true) return true
    this.localAddresses = localAddresses()
    return this.localAddresses.has(host)
  }

  /**
   * A packet with our id and authenticated, but not one this process sent (its sequence number
   * is none of ours): another node with the same --node-id, on this host too (checkOwnSender
   * cannot tell it by its address when both send from one multicast group port). Said once
   * per sender address, as checkOwnSender does.
   */
  private twinSeen (from: string): void {
    if (this.ownIdSenders.has(from) || this.ownIdSenders.size >= MAX_PEERS) return
    this.ownIdSenders.add(from)
    this.log.error({ from }, 'a farm sync packet carrying this node\'s id was sent by another process (its sequence number is none of ours): two nodes share one --node-id (each ignores the other\'s updates, and peers refuse one of them as replays); give every node its own')
  }

  private snapshotVia (): { via?: dgram.Socket } {
    return this.snapshotSocket !== undefined ? { via: this.snapshotSocket } : {}
  }

  /** Multicast: what is sent to a node's snapshot socket is counted on the node's row, not on a row of that address. */
  private rowOfNode (nodeId: string | undefined): { row?: string } {
    return this.multicast && nodeId !== undefined && nodeId !== '' ? { row: nodeId } : {}
  }

  /**
   * A first request gets a challenge (a cookie, in a datagram no bigger than the request); a
   * request that echoes a valid cookie from the same address gets the snapshot, within the
   * rate limits. Nothing else is ever sent to a requester.
   */
  private answerRequest (request: Extract<SyncMessage, { op: 'snapshot-request' }>, from: HostPort, nodeId: string): void {
    const decision = this.gate.decide(request, { address: from.host, port: from.port, nodeId })
    switch (decision.action) {
      case 'challenge':
        this.countSnapshot('challenged')
        this.sendMessage({ op: 'snapshot-challenge', requestId: request.requestId, cookie: decision.cookie }, { to: from, ...this.snapshotVia(), ...this.rowOfNode(nodeId) })
        break
      case 'answer':
        this.countSnapshot('answered')
        void this.sendSnapshot(request.requestId, from, this.rowOfNode(nodeId)).finally(() => this.gate.release())
        break
      case 'refuse':
        this.countSnapshot(decision.reason)
        this.log.debug({ from: formatHostPort(from), reason: decision.reason }, 'sync snapshot request refused')
        break
    }
  }

  private countSnapshot (result: SnapshotResult): void {
    this.counts.snapshotRequests.set(result, (this.counts.snapshotRequests.get(result) ?? 0) + 1)
  }

  /**
   * Answer a joining node with our live sessions, in datagrams of bounded size, paced (a yield
   * to the event loop every few chunks) so neither our socket nor the joiner's is flooded.
   * The total is bounded by L2's own bounds; the joiner stops listening at its timeout. L2 is
   * read as the chunks go (snapshot(), a walk of a few hundred entries per turn): copying it
   * whole first blocked this process ~140 ms and took ~50 MB per 100k sessions, per snapshot
   * under way (up to 4); collecting its keys first still blocked it ~30-80 ms.
   */
  private async sendSnapshot (requestId: number, to: HostPort, row: { row?: string }): Promise<void> {
    const maxBytes = SNAPSHOT_PACKET_BYTES - V2_OVERHEAD_BYTES - 16
    let chunk: SnapshotEntry[] = []
    let size = 0
    let sent = 0
    const pause = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 1)) }
    const flush = async (last: boolean): Promise<void> => {
      this.sendMessage({ op: 'snapshot-chunk', requestId, sessions: chunk, last }, { to, ...this.snapshotVia(), ...row })
      chunk = []
      size = 0
      if (++sent % 4 === 0) await pause()
    }
    for (const next of this.cache.l2.snapshot()) {
      if (next === undefined) {
        await pause() // a long run of entries passed over
        continue
      }
      const [sessionId, entry] = next
      const item = { sessionId, session: entry.der, createdAt: entry.createdAt }
      const bytes = snapshotEntryBytes(item)
      if (size + bytes > maxBytes && chunk.length > 0) await flush(false)
      chunk.push(item)
      size += bytes
    }
    await flush(true)
  }

  private count (result: InResult): void {
    this.counts.packetsIn.set(result, (this.counts.packetsIn.get(result) ?? 0) + 1)
  }

  private accept (from: string, nodeId: string | undefined, sequence?: bigint): void {
    this.counts.packetsAccepted++
    const nowMs = Date.now()
    const stats = this.multicast && nodeId !== undefined ? this.nodeRow(nodeId, from) : this.peers.get(from) ?? this.promote(from)
    stats.packetsIn++
    stats.lastSeenMs = nowMs
    if (nodeId === undefined) return
    if (stats.nodeId !== nodeId) {
      stats.nodeId = nodeId
      this.nodeIdsChanged++
    }
    // Multicast sends one datagram to the group: no copies to tell apart.
    if (sequence === undefined || this.multicast) return
    let recent = this.recentlyAccepted.get(nodeId)
    if (recent === undefined) {
      // The node first heard longest ago makes room (node ids change with restarts).
      if (this.recentlyAccepted.size >= MAX_PEERS) this.recentlyAccepted.delete(this.recentlyAccepted.keys().next().value as string)
      recent = { from: new Map(), atMs: nowMs }
      this.recentlyAccepted.set(nodeId, recent)
    }
    recent.from.set(sequence, from)
    recent.atMs = nowMs
    if (recent.from.size > COPY_WINDOW_PACKETS) recent.from.delete(recent.from.keys().next().value as bigint)
  }

  /**
   * A replay that is the second copy of a packet just accepted from the same node through
   * another address: a dual-stack peer sent it to both our addresses before it learnt they are
   * one node (distinctTargets). Counted as `duplicate`, so `replay` keeps meaning trouble.
   */
  private isCopy (from: string, result: RefusalDetail & { reason: RejectReason }): boolean {
    if (result.reason !== 'replay' || result.sender === undefined || result.sequence === undefined) return false
    const recent = this.recentlyAccepted.get(result.sender)
    if (recent === undefined || Date.now() - recent.atMs >= COPY_MAX_AGE_MS) return false
    // Accepted by this process, from another address: a packet replayed after a restart, or
    // one accepted long ago, is not among these.
    const first = recent.from.get(result.sequence)
    return first !== undefined && first !== from && !this.anotherLiveNode(from, result.sender)
  }

  /**
   * Whether `from` is the address of another node that is still sending: a copy of `sender`'s
   * packet from there is a replay from a forged source address. A source address is not
   * authenticated, and a copy teaches us that its address is its sender's (copySeen): one
   * replayed packet from a peer's address made us send our updates to one of the two nodes
   * only. A node gone quiet (restarted with a new node id) may be relearnt.
   */
  private anotherLiveNode (from: string, sender: string): boolean {
    const known = this.peers.get(from)?.nodeId
    if (known === undefined || known === sender) return false
    const heard = this.recentlyAccepted.get(known)
    return heard !== undefined && Date.now() - heard.atMs < KNOWN_NODE_QUIET_MS
  }

  private reject (from: string, reason: RejectReason, detail: RefusalDetail = {}): void {
    this.count(reason)
    const stats = this.rowOf(from, detail.sender) ?? this.stranger(from)
    stats.rejected[reason] = (stats.rejected[reason] ?? 0) + 1
    if (stats.packetsIn === 0 && warnsAbout(reason)) this.warnRefused(stats, from, reason, detail)
  }

  /**
   * A sender none of whose packets was accepted is otherwise only in /v1/peers and the metrics:
   * said once per sender and reason per interval, and few such lines in all (refusal-warning.ts).
   */
  private warnRefused (stats: PeerCounters, from: string, reason: RejectReason, detail: RefusalDetail): void {
    const nowMs = Date.now()
    const due = this.refusalWarnings.due(stats.warnedMs?.[reason], nowMs)
    if (due === 'quiet') return
    if (due === 'last') {
      this.log.warn('sync: more senders have every packet refused; no more such warnings for 10 minutes (see /v1/peers)')
      return
    }
    (stats.warnedMs ??= {})[reason] = nowMs
    const offsetSeconds = detail.offsetMs !== undefined ? Math.round(detail.offsetMs / 1000) : undefined
    this.log.warn({ from, reason, ...(detail.keyId !== undefined ? { keyId: detail.keyId } : {}), ...(offsetSeconds !== undefined ? { offsetSeconds } : {}) }, refusalWarning(from, reason, detail, this.codec.refusalContext))
  }

  /** The row a packet from `from` is counted on: its address's, or in multicast its node's. */
  private rowOf (from: string, sender: string | undefined): PeerCounters | undefined {
    if (!this.multicast) return this.peers.get(from)
    const nodeId = sender ?? this.nodeAt.get(from)
    return nodeId !== undefined ? this.peers.get(nodeId) : undefined
  }

  /** Multicast: a node's row, with the addresses it was heard from; what its address counted as a stranger moves over. */
  private nodeRow (nodeId: string, from: string): PeerCounters {
    const stats = this.peers.get(nodeId) ?? this.peerStats(nodeId, from)
    if (stats.address === 'other') return stats
    const known = this.strangers.get(from)
    if (known !== undefined) {
      this.strangers.delete(from)
      addCounts(stats, known)
    }
    if (this.nodeAt.get(from) !== nodeId) {
      // Addresses change with restarts (a snapshot socket's port): the one mapped longest ago makes room.
      if (!this.nodeAt.has(from) && this.nodeAt.size >= MAX_PEERS) this.nodeAt.delete(this.nodeAt.keys().next().value as string)
      this.nodeAt.set(from, nodeId)
    }
    stats.address = from
    const addresses = stats.addresses ??= []
    if (!addresses.includes(from)) {
      addresses.push(from)
      if (addresses.length > MAX_NODE_ADDRESSES) addresses.shift()
    }
    return stats
  }

  /**
   * HOST:PORT of a datagram's sender, IPv4 as configured (a socket on [::] sees IPv4 peers as
   * ::ffff:a.b.c.d); a busy peer sends one datagram after another, so the last is kept. With it,
   * whether the sender is one of our sockets (our port, an address of this host as last read:
   * where our multicast echo comes from; other nodes of this host share the group's port too).
   * The addresses are not read again here (a getifaddrs per sender change): after an interface
   * change our echo may look foreign, and is then only opened before being refused as `own`.
   */
  private addressKey (rinfo: dgram.RemoteInfo): string {
    const last = this.lastAddress
    if (rinfo.port !== last.port || rinfo.address !== last.address) {
      const host = unmappedHost(rinfo.address)
      const ownSocket = this.ownPorts.has(rinfo.port) && (this.localAddresses ??= localAddresses()).has(host)
      this.lastAddress = { address: rinfo.address, port: rinfo.port, key: formatHostPort({ host, port: rinfo.port }), ownSocket }
    }
    return this.lastAddress.key
  }

  /**
   * Stats of a peer or an authenticated sender (`key`: its address, or in multicast its node
   * id); bounded: when full, the row heard from longest ago goes (forgetOldestPeer), and only
   * when every row is a peer we send to now is the sender counted as 'other'.
   */
  private peerStats (key: string, address = key): PeerCounters {
    let stats = this.peers.get(key)
    if (stats === undefined) {
      if (this.peers.size >= MAX_PEERS && !this.forgetOldestPeer()) {
        stats = this.peers.get('other') ?? newCounters('other')
        this.peers.set('other', stats)
        return stats
      }
      stats = newCounters(address)
      this.peers.set(key, stats)
    }
    return stats
  }

  /**
   * Makes room for a row: the one heard from longest ago (or never) that is not a peer we send
   * to now. A node that runs for months sees peers come and go (a restarted pod has a new
   * address and, by default, a new node id); rows were never dropped, so every peer after the
   * 1024th was counted under 'other', its own row missing from /v1/peers.
   */
  private forgetOldestPeer (): boolean {
    const targets = new Set(this.multicast ? [] : this.opts.peers.list().map((p) => formatHostPort({ host: unmappedHost(p.host), port: p.port })))
    let oldest: string | undefined
    let oldestMs = Infinity
    for (const [key, stats] of this.peers) {
      if (key === 'other' || targets.has(key)) continue
      const seenMs = stats.lastSeenMs ?? -Infinity
      if (seenMs < oldestMs) {
        oldest = key
        oldestMs = seenMs
      }
    }
    if (oldest === undefined) return false
    this.peers.delete(oldest)
    return true
  }

  /** A stranger's first authenticated packet: its counters so far move to the peers. */
  private promote (address: string): PeerCounters {
    const known = this.strangers.get(address)
    const stats = this.peerStats(address)
    if (known !== undefined) {
      this.strangers.delete(address)
      if (stats.address === address) Object.assign(stats, known)
    }
    return stats
  }

  private stranger (address: string): PeerCounters {
    let stats = this.strangers.get(address)
    if (stats === undefined) {
      if (this.strangers.size >= MAX_STRANGERS) this.strangers.delete(this.strangers.keys().next().value as string)
      stats = newCounters(address)
      this.strangers.set(address, stats)
    }
    return stats
  }

  private joinGroup (socket: dgram.Socket, group: string, iface: MulticastInterface): void {
    socket.addMembership(group, iface.address)
    this.sendOnInterface(socket, iface)
  }

  private sendOnInterface (socket: dgram.Socket, iface: MulticastInterface): void {
    if (iface.sendVia !== undefined) socket.setMulticastInterface(iface.sendVia)
    socket.setMulticastTTL(iface.ttl)
    // Several nodes on one host only hear each other with loopback on; our own packets are
    // recognised by the codec (node id in v2, the IDs we just sent in stud) and skipped.
    socket.setMulticastLoopback(true)
  }
}

/** This machine's addresses (a multicast echo of our own packets comes from one of them). */
function localAddresses (): Set<string> {
  return new Set(Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((a) => unmappedHost(a.address.split('%')[0] as string))))
}

function newCounters (address: string): PeerCounters {
  return { address, packetsIn: 0, packetsOut: 0, sendErrors: 0, rejected: {} }
}

/** A stranger's counters added to the node row it turned out to be (multicast). */
function addCounts (to: PeerCounters, from: PeerCounters): void {
  to.packetsIn += from.packetsIn
  to.packetsOut += from.packetsOut
  to.sendErrors += from.sendErrors
  for (const [reason, n] of Object.entries(from.rejected) as Array<[RejectReason, number]>) to.rejected[reason] = (to.rejected[reason] ?? 0) + n
}

/** Addresses listed under one node's row in multicast (its group port and its snapshot socket, and a few changes). */
const MAX_NODE_ADDRESSES = 8

/**
 * A replay is a dual-stack peer's second copy when the packet is among the last this many
 * accepted from that node, from another address, and the node's last came less than this long
 * ago: both copies leave in one send (a batch is at most 1400 bytes, a few dozen updates).
 */
const COPY_WINDOW_PACKETS = 128
const COPY_MAX_AGE_MS = 1000
/** How long a node must have sent nothing before a copy may name its address as another node's (anotherLiveNode). */
const KNOWN_NODE_QUIET_MS = 60_000

/** Senders of nothing authenticated kept in /v1/peers (the most recent ones). */
const MAX_STRANGERS = 256

/** Bound on the per-address tables (/v1/peers, failing targets): a flood of senders cannot grow them. */
const MAX_PEERS = 1024

interface MulticastInterface {
  /** Address to join on; undefined = let the kernel choose. */
  address?: string
  /** For setMulticastInterface; undefined = the kernel's default route. */
  sendVia?: string
  ttl: number
}

/**
 * The address a multicast socket binds: the group itself, so only datagrams sent to it arrive.
 * An IPv6 group is bound with the interface's scope (a link-scoped group without one is
 * EINVAL); with no interface given the kernel picks one to join on, so the socket binds [::].
 */
function groupBindAddress (group: string, iface: MulticastInterface): string {
  if (!net.isIPv6(group)) return group
  const scope = iface.sendVia?.split('%')[1]
  return scope !== undefined ? `${group}%${scope}` : '::'
}

/** `--sync-interface IFACE[,TTL]`: an interface given by name (eth0) or address, and the TTL. */
function multicastInterface (option: string, type: 'udp4' | 'udp6'): MulticastInterface {
  const [iface = '', ttlText] = option.split(',')
  const ttl = ttlText !== undefined ? Number(ttlText) : 1
  if (iface === '') return { ttl }
  if (net.isIP(iface) !== 0) {
    if (type === 'udp4') return { address: iface, sendVia: iface, ttl }
    // IPv6 picks the interface by its index (the scope after %), never by address: a bare
    // address would mean the kernel's default multicast route, whatever was given.
    const name = Object.entries(os.networkInterfaces()).find(([, list]) => list?.some((a) => a.family === 'IPv6' && a.address.toLowerCase() === iface.toLowerCase().split('%')[0]) === true)?.[0]
    if (name === undefined) throw new ConfigError([`--sync-interface: no interface has the IPv6 address ${iface} (give the interface's name, e.g. eth0)`])
    return { address: `${iface.split('%')[0] as string}%${name}`, sendVia: `::%${name}`, ttl }
  }
  const family = type === 'udp6' ? 'IPv6' : 'IPv4'
  const found = os.networkInterfaces()[iface]?.find((a) => a.family === family)
  if (found === undefined) {
    const names = Object.keys(os.networkInterfaces()).join(', ')
    throw new ConfigError([`--sync-interface: no ${family} address on interface "${iface}" (this machine has: ${names})`])
  }
  return type === 'udp6'
    ? { address: `${found.address}%${iface}`, sendVia: `::%${iface}`, ttl }
    : { address: found.address, sendVia: found.address, ttl }
}

/**
 * Unicast rows are addresses: a dual-stack peer (found by its A and AAAA records) is two of our
 * targets. Rows of targets that turned out to be one node (by its authenticated node id) become
 * one, as in multicast, with every address in `addresses` and the counts summed; rows of
 * senders we do not send to, and of targets not heard from yet, stay apart.
 */
export function byNode (rows: PeerStats[]): PeerStats[] {
  const merged: PeerStats[] = []
  const byId = new Map<string, PeerStats>()
  for (const row of rows) {
    const key = row.configured ? row.nodeId : undefined
    const first = key !== undefined ? byId.get(key) : undefined
    if (first === undefined) {
      // A copy: `rejected` is still the live counters' object.
      const own = { ...row, rejected: { ...row.rejected } }
      merged.push(own)
      if (key !== undefined) byId.set(key, own)
      continue
    }
    first.addresses = [...first.addresses ?? [first.address], row.address]
    first.packetsIn += row.packetsIn
    first.packetsOut += row.packetsOut
    first.sendErrors += row.sendErrors
    for (const [reason, n] of Object.entries(row.rejected) as Array<[RejectReason, number]>) first.rejected[reason] = (first.rejected[reason] ?? 0) + n
    if (row.lastSeen !== undefined && (first.lastSeen === undefined || row.lastSeen > first.lastSeen)) first.lastSeen = row.lastSeen
  }
  return merged
}
