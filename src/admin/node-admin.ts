import { formatAgentReply } from '../agent/agent-reply.js'
import type { LoadSample } from '../agent/load-sampler.js'
import type { NodeState } from '../agent/node-state.js'
import type { PrimarySessionCache } from '../cache/primary-session-cache.js'
import { formatHostPort, type HostPort } from '../config/host-port.js'
import { AdminRequestError } from '../errors.js'
import type { HaproxyCoordinator } from '../haproxy/coordinator.js'
import type { WorkerRestarts } from '../node/restart-backoff.js'
import type { TerminatorStatus } from '../node/terminator-part.js'
import type { StoreStatus } from '../store/shared-session-store.js'
import type { PeerStats } from '../sync/sync-service.js'
import type { Logger } from '../util/logger.js'
import type { AdminSource } from './admin-server.js'
import type { DashboardBody } from './dashboard-schema.js'
import type { NodeDashboard } from './node-dashboard.js'
import type { CacheBody, CertificatesBody, HaproxyResult, PeersBody, PutStateBody, PutStateResponse, StateBody } from './schemas.js'

export interface NodeAdminParts {
  node: { id: string; workers: number; cacheSize: number; cacheMaxBytes: number; syncListen: HostPort | 'off' }
  state: NodeState
  /** The latest load sample (the sampler runs on a timer; reads never wait for workers). */
  sample: () => LoadSample | undefined
  listening: () => number
  /** The workers' restarts and crash loop (absent when the node has no workers of its own). */
  restarts?: () => WorkerRestarts
  /** Who terminates TLS and how it is doing (shown in /v1/state). */
  terminator?: () => TerminatorStatus
  cache: PrimarySessionCache
  coordinator?: HaproxyCoordinator
  peers?: () => PeerStats[]
  /** The certificates served and their OCSP staples. */
  certificates: () => CertificatesBody
  /** The shared session store, when --session-store is set. */
  store?: () => StoreStatus
  metrics: () => Promise<{ contentType: string; body: string }>
  dashboard: NodeDashboard
  log: Logger
}

const NEEDS_HAPROXY = 'needs --haproxy-socket and --haproxy-server (the node clears HAProxy\'s stick table through its Runtime API)'

/**
 * What the admin API shows and does for a terminating node: health, state (with HAProxy's view
 * of the node), admin state changes told to HAProxy at once, client moves, caches, peers and
 * the metrics page. Reads come from state kept up to date by events and the load sampler.
 */
export class NodeAdmin implements AdminSource {
  constructor (private readonly parts: NodeAdminParts) {}

  health (): { ok: boolean; state: StateBody['state']; health: 'up' | 'down'; reason?: string } {
    const snap = this.parts.state.snapshot()
    const reason = snap.reason ?? (snap.admin !== 'ready' ? `state is ${snap.admin}` : undefined)
    return { ok: snap.health === 'up' && snap.admin === 'ready', state: snap.admin, health: snap.health, ...(reason !== undefined ? { reason } : {}) }
  }

  async state (): Promise<StateBody> {
    const { state, node, coordinator } = this.parts
    const snap = state.snapshot()
    const sample = this.parts.sample()
    const body: StateBody = {
      node: node.id,
      state: snap.admin,
      health: snap.health,
      ...(snap.reason !== undefined ? { reason: snap.reason } : {}),
      effective: snap.effective,
      agentReply: formatAgentReply(state.agentReply()).trimEnd(),
      weightPercent: snap.weightPercent,
      ...(snap.spareCapacity !== undefined ? { spareCapacity: snap.spareCapacity } : {}),
      ...(snap.maxconn !== undefined ? { maxconn: snap.maxconn } : {}),
      ...(snap.changedAt !== undefined ? { changedAt: snap.changedAt } : {}),
      workers: { configured: node.workers, listening: this.parts.listening(), ...(this.parts.restarts !== undefined ? { restarts: this.parts.restarts() } : {}) },
      connections: sample?.connections ?? 0,
      handshakes: { ...(sample?.handshakes ?? { full: 0, resumed: 0 }), perSecond: sample?.handshakesPerSecond ?? 0 },
      ...(sample?.eventLoopUtilization !== undefined ? { eventLoopUtilization: sample.eventLoopUtilization } : {}),
      ...(sample !== undefined ? { sampledAt: sample.at.toISOString() } : {}),
      ...(this.parts.terminator !== undefined ? { terminator: this.parts.terminator() } : {}),
      ...(this.parts.store !== undefined ? { store: this.parts.store() } : {})
    }
    if (coordinator !== undefined) body.haproxy = await coordinator.view()
    return body
  }

  /** `PUT /v1/state`: change the admin state, and tell HAProxy at once when a socket is set. */
  async setState (body: PutStateBody): Promise<PutStateResponse> {
    const { state, coordinator, log } = this.parts
    const moveClients = body.moveClients === true
    if (moveClients && coordinator === undefined) {
      throw new AdminRequestError(409, 'Conflict', `moveClients ${NEEDS_HAPROXY}; nothing was changed`)
    }
    const previous = state.admin
    const changed = state.setAdmin(body.state)
    if (changed) log.info({ state: body.state, previous }, 'admin state changed')
    const result: PutStateResponse = { state: state.admin, previous, changed }
    if (coordinator !== undefined) {
      const commands = await coordinator.applyState(body.state, { moveClients })
      result.haproxy = { ok: commands.every((c) => c.ok), commands }
    }
    return result
  }

  /** `POST /v1/clients/move`: forget this node's persistence entries in HAProxy. */
  async moveClients (): Promise<HaproxyResult> {
    const coordinator = this.parts.coordinator
    if (coordinator === undefined) throw new AdminRequestError(409, 'Conflict', `moving clients ${NEEDS_HAPROXY}`)
    const commands = await coordinator.moveClients()
    return { ok: commands.every((c) => c.ok), commands }
  }

  cache (): CacheBody {
    const { cache, node } = this.parts
    const l2 = cache.l2
    const sample = this.parts.sample()
    return {
      l2: { entries: l2.size, bytes: l2.bytes, hits: l2.hits, misses: l2.misses, maxEntries: node.cacheSize, maxBytes: node.cacheMaxBytes },
      l1: (sample?.workers ?? []).map((w) => ({ ...(w.pid !== undefined ? { pid: w.pid } : {}), entries: w.l1.entries, bytes: w.l1.bytes, hits: w.l1.hits, misses: w.l1.misses })),
      ...(sample !== undefined ? { sampledAt: sample.at.toISOString() } : {}),
      ...(this.parts.store !== undefined ? { store: this.parts.store() } : {})
    }
  }

  peers (): PeersBody {
    const listen = this.parts.node.syncListen
    return { sync: listen === 'off' ? 'off' : formatHostPort(listen), peers: this.parts.peers?.() ?? [] }
  }

  certificates (): CertificatesBody {
    return this.parts.certificates()
  }

  async metrics (): Promise<{ contentType: string; body: string }> {
    return await this.parts.metrics()
  }

  async dashboard (): Promise<DashboardBody> {
    return await this.parts.dashboard.body({ state: await this.state(), cache: this.cache(), peers: this.peers(), certificates: this.certificates() })
  }
}
