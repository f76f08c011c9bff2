import crypto from 'node:crypto'
import dgram from 'node:dgram'
import { EventEmitter } from 'node:events'
import net from 'node:net'
import os from 'node:os'
import { Counter, type Registry } from 'prom-client'
import type { PrimarySessionCache } from '../cache/primary-session-cache.js'
import type { SessionEntry } from '../cache/session-store.js'
import { formatHostPort, type HostPort } from '../config/host-port.js'
import { sessionProtocolVersion, TLS1_3_VERSION } from '../tls/session-der.js'
import type { Logger } from '../util/logger.js'
import { FarmKeyRing, type FarmKey } from './farm-keys.js'
import { REJECT_REASONS, type RejectReason } from './reject-reasons.js'
import { ReplayGuard } from './replay-guard.js'
import { decodeStud, encodeStud } from './wire-stud.js'
import {
  createSequenceCounter, decodeV2, encodeV2, MAX_UDP_PAYLOAD_BYTES, snapshotEntryBytes,
  V2_OVERHEAD_BYTES, type EncodeContext, type SnapshotEntry, type SyncMessage
} from './wire-v2.js'

export interface SyncOptions {
  listen: HostPort
  peers: HostPort[]
  /** `IFACE[,TTL]` for multicast; empty = default interface, TTL 1. */
  multicastInterface: string
  format: 'v2' | 'stud'
  /** v2: the farm keys, first current. */
  farmKeys: FarmKey[]
  /** stud: HMAC key (SHA-1 of the RSA key's PKCS#1 DER). */
  studHmacKey?: Buffer
  nodeName: string
  sessionTimeoutSeconds: number
  maxSkewSeconds: number
}

/** Per-sender (or per-peer) counters for /v1/peers. */
export interface PeerStats {
  address: string
  nodeId?: string
  configured: boolean
  lastSeen?: string
  packetsIn: number
  packetsOut: number
  sendErrors: number
  rejected: Partial<Record<RejectReason, number>>
}

/** How far in the past stud datagrams are dated, at least (see publishNew). */
export const STUD_CLOCK_MARGIN_SECONDS = 2

/** Largest snapshot datagram we send; fits loopback and jumbo-free LANs after IP fragmentation. */
const SNAPSHOT_PACKET_BYTES = 16_000

/**
 * The farm sync in the primary: one UDP socket, New/Del to every peer (or the multicast group),
 * and what comes in is authenticated, checked and only then put into L2. Sends are
 * fire-and-forget: a dead or slow peer costs a counter, never a handshake. Nothing is trusted
 * before the decoder says so; a rejected packet only increments
 * `tlsfleet_sync_packets_total{direction="in",result=<reason>}`.
 */
export class SyncService extends EventEmitter<{ 'remote-del': [id: Buffer] }> {
  readonly nodeId: Buffer
  private socket?: dgram.Socket
  private readonly targets: HostPort[]
  private readonly multicast: boolean
  private readonly keyRing?: FarmKeyRing
  private readonly encodeContext?: EncodeContext
  private readonly replay = new ReplayGuard()
  private readonly packets: Counter<'direction' | 'result'>
  private readonly peers = new Map<string, PeerStats>()
  /** stud has no node id: remember what we sent, to skip our own multicast echoes. */
  private readonly recentlySent = new Set<string>()
  private readonly snapshotWaiters = new Map<number, (entries: number, last: boolean) => void>()

  constructor (
    private readonly opts: SyncOptions,
    private readonly cache: PrimarySessionCache,
    private readonly log: Logger,
    registry: Registry
  ) {
    super()
    this.nodeId = crypto.createHash('sha256').update(opts.nodeName).digest().subarray(0, 8)
    this.multicast = isMulticast(opts.listen.host)
    this.targets = this.multicast ? [opts.listen] : opts.peers
    if (opts.format === 'v2') {
      this.keyRing = new FarmKeyRing(opts.farmKeys)
      this.encodeContext = { keyRing: this.keyRing, nodeId: this.nodeId, nextSequence: createSequenceCounter() }
    } else if (opts.studHmacKey === undefined) {
      throw new Error('sync format stud needs the HMAC key of an RSA certificate')
    }
    for (const peer of opts.peers) this.peerStats(formatHostPort(peer), true)
    this.packets = new Counter({
      name: 'tlsfleet_sync_packets_total',
      help: 'Farm sync datagrams by direction and result (accepted, send_error, or the reason a packet was rejected)',
      labelNames: ['direction', 'result'] as const,
      registers: [registry]
    })
    for (const reason of REJECT_REASONS) this.packets.inc({ direction: 'in', result: reason }, 0)
    this.packets.inc({ direction: 'in', result: 'accepted' }, 0)
    this.packets.inc({ direction: 'out', result: 'sent' }, 0)
    this.packets.inc({ direction: 'out', result: 'send_error' }, 0)
  }

  async start (): Promise<void> {
    const { host, port } = this.opts.listen
    const type = net.isIPv6(host) ? 'udp6' : 'udp4'
    const socket = dgram.createSocket({ type, reuseAddr: this.multicast })
    this.socket = socket
    socket.on('message', (packet, rinfo) => this.onPacket(packet, rinfo))
    socket.on('error', (err) => this.log.error({ err: err.message }, 'sync socket error'))
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      // A multicast receiver binds the group's port on every address, then joins the group.
      socket.bind({ port, address: this.multicast ? (type === 'udp6' ? '::' : '0.0.0.0') : host }, () => {
        socket.removeListener('error', reject)
        resolve()
      })
    })
    // Snapshots arrive as a burst of datagrams: a larger buffer (capped by net.core.rmem_max)
    // keeps a warm join from losing chunks.
    try { socket.setRecvBufferSize(4 * 1024 * 1024) } catch { /* keep the kernel default */ }
    if (this.multicast) this.joinGroup(socket, host, type)
    if (this.opts.format === 'stud') {
      this.log.warn('sync format "stud": sessions (with their master secrets) cross the network in clear, and packets have no replay protection; use it only to migrate from hitch/stud, on a trusted network')
    }
    this.log.info({ listen: formatHostPort(this.opts.listen), multicast: this.multicast, peers: this.opts.peers.map(formatHostPort), format: this.opts.format }, 'farm sync listening')
  }

  /** Send this node's new session to the farm (called for sessions made by our own workers). */
  publishNew (id: Buffer, entry: SessionEntry): void {
    if (this.opts.format === 'stud') {
      if (id.length > 32 || entry.der.length > 512) return // outside what stud's format carries
      this.recentlySent.add(id.toString('hex'))
      if (this.recentlySent.size > 4096) this.recentlySent.delete(this.recentlySent.values().next().value as string)
      // hitch aborts on a date in the future (assert in handle_shcupd): date it safely in the past.
      const createdAt = entry.createdAt - Math.max(this.opts.maxSkewSeconds, STUD_CLOCK_MARGIN_SECONDS)
      this.sendToAll(encodeStud({ op: 'new', sessionId: id, session: entry.der, createdAt }, this.opts.studHmacKey as Buffer))
      return
    }
    this.sendMessage({ op: 'new', sessionId: id, session: entry.der, createdAt: entry.createdAt })
  }

  publishDel (id: Buffer): void {
    if (this.opts.format === 'stud') return // stud's format has no Del
    this.sendMessage({ op: 'del', sessionId: id })
  }

  /**
   * Warm join: ask the peers for their live sessions and wait until one has sent its last chunk,
   * or the timeout passes. Returns how many sessions arrived. A node alone starts anyway.
   */
  async warmJoin (timeoutMs: number): Promise<number> {
    if (this.opts.format !== 'v2' || this.targets.length === 0 || timeoutMs <= 0) return 0
    const requestId = crypto.randomInt(1, 2 ** 31)
    let received = 0
    return await new Promise((resolve) => {
      const finish = (): void => { clearTimeout(timer); this.snapshotWaiters.delete(requestId); resolve(received) }
      const timer = setTimeout(finish, timeoutMs)
      this.snapshotWaiters.set(requestId, (entries, last) => { received += entries; if (last) finish() })
      this.sendMessage({ op: 'snapshot-request', requestId })
    })
  }

  peerList (): PeerStats[] { return [...this.peers.values()] }

  async close (): Promise<void> {
    const socket = this.socket
    if (socket === undefined) return
    this.socket = undefined
    await new Promise<void>((resolve) => socket.close(() => resolve()))
  }

  private sendMessage (message: SyncMessage, to?: HostPort): void {
    let packet: Buffer
    try {
      packet = encodeV2(message, this.encodeContext as EncodeContext)
    } catch (err) {
      this.log.debug({ err: (err as Error).message, op: message.op }, 'sync message not sendable')
      return
    }
    if (to !== undefined) this.send(packet, to)
    else this.sendToAll(packet)
  }

  private sendToAll (packet: Buffer): void {
    for (const target of this.targets) this.send(packet, target)
  }

  private send (packet: Buffer, target: HostPort): void {
    const socket = this.socket
    if (socket === undefined) return
    const stats = this.multicast ? undefined : this.peerStats(formatHostPort(target), false)
    socket.send(packet, target.port, target.host, (err) => {
      if (err !== null && err !== undefined) {
        this.packets.inc({ direction: 'out', result: 'send_error' })
        if (stats !== undefined) stats.sendErrors++
      } else {
        this.packets.inc({ direction: 'out', result: 'sent' })
        if (stats !== undefined) stats.packetsOut++
      }
    })
  }

  private onPacket (packet: Buffer, rinfo: dgram.RemoteInfo): void {
    const from = formatHostPort({ host: rinfo.address, port: rinfo.port })
    if (this.opts.format === 'stud') {
      const result = decodeStud(packet, { hmacKey: this.opts.studHmacKey as Buffer, now: Date.now, sessionTimeoutSeconds: this.opts.sessionTimeoutSeconds, maxSkewSeconds: this.opts.maxSkewSeconds })
      if (!result.ok) return this.reject(from, result.reason)
      const id = result.message.sessionId
      if (this.recentlySent.has(id.toString('hex'))) return this.reject(from, 'own')
      if (sessionProtocolVersion(result.message.session) === TLS1_3_VERSION) return this.reject(from, 'tls13_session')
      this.accept(from, undefined)
      this.cache.addRemote(id, { der: result.message.session, createdAt: result.message.createdAt })
      return
    }
    const result = decodeV2(packet, {
      keyRing: this.keyRing as FarmKeyRing,
      ownNodeId: this.nodeId,
      replay: this.replay,
      now: Date.now,
      sessionLifetimeSeconds: this.opts.sessionTimeoutSeconds,
      maxSkewSeconds: this.opts.maxSkewSeconds,
      maxPacketBytes: MAX_UDP_PAYLOAD_BYTES
    })
    if (!result.ok) {
      // Our own multicast echo is expected, not an attack: counted, but not per peer.
      if (result.reason === 'own') { this.packets.inc({ direction: 'in', result: 'own' }); return }
      return this.reject(from, result.reason)
    }
    this.accept(from, result.sender.toString('hex'))
    const message = result.message
    switch (message.op) {
      case 'new':
        this.cache.addRemote(message.sessionId, { der: message.session, createdAt: message.createdAt })
        break
      case 'del':
        if (this.cache.deleteRemote(message.sessionId)) this.emit('remote-del', message.sessionId)
        break
      case 'snapshot-request':
        void this.sendSnapshot(message.requestId, { host: rinfo.address, port: rinfo.port })
        break
      case 'snapshot-chunk': {
        for (const s of message.sessions) this.cache.addRemote(s.sessionId, { der: s.session, createdAt: s.createdAt })
        this.snapshotWaiters.get(message.requestId)?.(message.sessions.length, message.last)
        break
      }
    }
  }

  /**
   * Answer a joining node with our live sessions, in datagrams of bounded size, paced (a yield
   * to the event loop every few chunks) so neither our socket nor the joiner's is flooded.
   * The total is bounded by L2's own bounds; the joiner stops listening at its timeout.
   */
  private async sendSnapshot (requestId: number, to: HostPort): Promise<void> {
    const maxBytes = SNAPSHOT_PACKET_BYTES - V2_OVERHEAD_BYTES - 16
    let chunk: SnapshotEntry[] = []
    let size = 0
    let sent = 0
    const flush = async (last: boolean): Promise<void> => {
      this.sendMessage({ op: 'snapshot-chunk', requestId, sessions: chunk, last }, to)
      chunk = []
      size = 0
      if (++sent % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 1))
    }
    for (const [sessionId, entry] of [...this.cache.l2.entries()]) {
      const item = { sessionId, session: entry.der, createdAt: entry.createdAt }
      const bytes = snapshotEntryBytes(item)
      if (size + bytes > maxBytes && chunk.length > 0) await flush(false)
      chunk.push(item)
      size += bytes
    }
    await flush(true)
  }

  private accept (from: string, nodeId: string | undefined): void {
    this.packets.inc({ direction: 'in', result: 'accepted' })
    const stats = this.peerStats(from, false)
    stats.packetsIn++
    stats.lastSeen = new Date().toISOString()
    if (nodeId !== undefined) stats.nodeId = nodeId
  }

  private reject (from: string, reason: RejectReason): void {
    this.packets.inc({ direction: 'in', result: reason })
    const stats = this.peerStats(from, false)
    stats.rejected[reason] = (stats.rejected[reason] ?? 0) + 1
  }

  /** Stats per address; unknown senders are tracked too, but bounded so a flood cannot grow it. */
  private peerStats (address: string, configured: boolean): PeerStats {
    let stats = this.peers.get(address)
    if (stats === undefined) {
      if (this.peers.size >= 1024) {
        stats = this.peers.get('other') ?? { address: 'other', configured: false, packetsIn: 0, packetsOut: 0, sendErrors: 0, rejected: {} }
        this.peers.set('other', stats)
        return stats
      }
      stats = { address, configured, packetsIn: 0, packetsOut: 0, sendErrors: 0, rejected: {} }
      this.peers.set(address, stats)
    }
    return stats
  }

  private joinGroup (socket: dgram.Socket, group: string, type: 'udp4' | 'udp6'): void {
    const [iface = '', ttlText] = this.opts.multicastInterface.split(',')
    const ifaceAddress = interfaceAddress(iface, type)
    socket.addMembership(group, ifaceAddress)
    if (ifaceAddress !== undefined) socket.setMulticastInterface(type === 'udp6' && iface !== '' && !net.isIP(iface) ? `::%${iface}` : ifaceAddress)
    socket.setMulticastTTL(ttlText !== undefined ? Number(ttlText) : 1)
    // Several nodes on one host only hear each other with loopback on; our own packets are
    // recognised by node id (v2) or by the IDs we just sent (stud) and skipped.
    socket.setMulticastLoopback(true)
  }
}

function isMulticast (host: string): boolean {
  if (net.isIPv4(host)) {
    const first = Number(host.split('.')[0])
    return first >= 224 && first <= 239
  }
  return net.isIPv6(host) && host.toLowerCase().startsWith('ff')
}

/** An interface given by name (eth0) or address; undefined = let the kernel choose. */
function interfaceAddress (iface: string, type: 'udp4' | 'udp6'): string | undefined {
  if (iface === '') return undefined
  if (net.isIP(iface) !== 0) return iface
  const family = type === 'udp6' ? 'IPv6' : 'IPv4'
  const found = os.networkInterfaces()[iface]?.find((a) => a.family === family)
  if (found === undefined) throw new Error(`--sync-interface: no ${family} address on interface "${iface}"`)
  return type === 'udp6' ? `${found.address}%${iface}` : found.address
}
