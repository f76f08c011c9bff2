import type { Worker as ClusterWorker } from 'node:cluster'
import closeWithGrace from 'close-with-grace'
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import { AdminTokenError, isLoopbackHost, readTokenFile } from '../admin/admin-auth.js'
import { AdminRequestError, startAdminServer } from '../admin/admin-server.js'
import type { CacheBody, HaproxyResult, PeersBody, PutStateBody, PutStateResponse, StateBody } from '../admin/schemas.js'
import { formatAgentReply } from '../agent/agent-reply.js'
import { startAgentServer } from '../agent/agent-server.js'
import { BackendProbe } from '../agent/backend-probe.js'
import { LoadSampler } from '../agent/load-sampler.js'
import { HaproxyCoordinator, type CommandOutcome } from '../haproxy/coordinator.js'
import { PrimarySessionCache } from '../cache/primary-session-cache.js'
import { formatHostPort, type HostPort } from '../config/host-port.js'
import type { NodeConfig } from '../config/options.js'
import { startDemoBackend } from '../demo/demo-backend.js'
import { loadCertificateFile, type CertificateBundle } from '../tls/certificates.js'
import { ensureSelfSignedCertificate } from '../tls/self-signed.js'
import { deriveKey, type FarmKey } from '../sync/farm-keys.js'
import { loadFarmSecrets } from '../sync/farm-secret.js'
import { SyncService } from '../sync/sync-service.js'
import { studHmacKeyFromPrivateKeyPem } from '../sync/wire-stud.js'
import crypto from 'node:crypto'
import fs from 'node:fs'
import { createLogger, type Logger } from '../util/logger.js'
import type { AdminState } from '../agent/agent-reply.js'
import type { PrimaryToWorker } from './messages.js'
import { NodeState } from './node-state.js'
import { WorkerPool, type SessionMessage } from './worker-pool.js'
import { workerSettings, type WorkerSettings } from './worker-settings.js'

/** How often the workers' load is sampled for the agent's weight (and /v1/state, /v1/cache). */
const SAMPLE_INTERVAL_MS = 1000

/**
 * The primary ("father"): owns L2, the farm sync, the HAProxy agent, the admin API and the
 * Runtime API coordination, and its workers (WorkerPool). It never accepts a client
 * connection: with the default accept model every worker has its own SO_REUSEPORT listener.
 */
export class Primary {
  readonly cache: PrimarySessionCache
  private readonly log: Logger
  private certificates: CertificateBundle[] = []
  private settings!: WorkerSettings
  private readonly workers: WorkerPool
  private stopping = false
  private readonly registry = new Registry()
  private closers: Array<() => Promise<void>> = []
  private farmKeys: FarmKey[] = []
  sync?: SyncService
  /** False until the warm join (session snapshot from peers) is over. */
  private warm = false
  /** Admin state, health and weight: what the agent and the admin API report. */
  readonly state: NodeState
  private coordinator?: HaproxyCoordinator
  private readonly sampler: LoadSampler
  private backendProbe?: BackendProbe
  private readonly haproxyCommands: Counter<'command' | 'result'>

  constructor (readonly config: NodeConfig) {
    this.log = createLogger({ level: config.logLevel, format: config.logFormat, name: 'primary' })
    this.cache = new PrimarySessionCache({
      maxEntries: config.cacheSize,
      maxBytes: config.cacheMaxBytes,
      lifetimeSeconds: config.sessionTimeout
    })
    collectDefaultMetrics({ register: this.registry })
    this.state = new NodeState({ initial: config.initialState, maxconn: config.maxconn, maxHandshakesPerSecond: config.maxHandshakeRate })
    this.sampler = new LoadSampler({
      intervalMs: SAMPLE_INTERVAL_MS,
      collect: async (timeoutMs) => await this.workers.collectReports(timeoutMs, { metrics: false }),
      listening: () => this.workers.listening.size,
      onSample: (sample) => {
        if (sample.eventLoopUtilization !== undefined) this.state.updateLoad({ eventLoopUtilization: sample.eventLoopUtilization, handshakesPerSecond: sample.handshakesPerSecond })
      },
      onError: (err) => this.log.warn({ err: err.message }, 'load sample failed')
    })
    this.haproxyCommands = this.registerAgentMetrics()
    const cache = this.cache
    new Gauge({ name: 'tlsfleet_session_cache_entries', help: 'Sessions held in L2', registers: [this.registry], collect () { this.set(cache.l2.size) } })
    new Gauge({ name: 'tlsfleet_session_cache_bytes', help: 'Approximate bytes held by L2', registers: [this.registry], collect () { this.set(cache.l2.bytes) } })
    this.workers = new WorkerPool({
      size: config.workers,
      acceptModel: config.acceptModel,
      listenDescription: config.listen.map(formatHostPort).join(', '),
      init: () => ({ t: 'init', settings: this.settings, certificates: this.certificates }),
      onSessionMessage: (worker, message) => this.onSessionMessage(worker, message),
      onChange: () => this.refreshHealth(),
      log: this.log
    })
    const listening = this.workers.listening
    const configured = config.workers
    new Gauge({
      name: 'tlsfleet_workers',
      help: 'Worker processes: configured, and listening now',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect () {
        this.set({ state: 'listening' }, listening.size)
        this.set({ state: 'configured' }, configured)
      }
    })
  }

  async start (): Promise<void> {
    const adminToken = this.adminToken()
    this.setupHaproxy()
    this.certificates = await this.loadCertificates()
    this.farmKeys = loadFarmSecrets(this.config.syncSecretFile)
    // The agent answers from the start: "down #warming up" until the workers serve.
    await this.startAgent()
    await this.startSync()
    const backend = await this.startBackend()
    await this.startBackendProbe(backend)
    this.settings = workerSettings(this.config, backend, this.ticketSecrets())
    const adminRequests = new Counter({ name: 'tlsfleet_admin_requests_total', help: 'Admin API requests answered, by HTTP status', labelNames: ['status'] as const, registers: [this.registry] })
    const admin = await startAdminServer({
      listen: this.config.adminListen,
      log: this.log,
      onResponse: (status) => adminRequests.inc({ status: String(status) }),
      ...(adminToken !== undefined ? { token: adminToken } : {})
    }, {
      health: () => this.health(),
      state: async () => await this.describeState(),
      setState: async (body) => await this.setState(body),
      moveClients: async () => await this.moveClients(),
      cache: () => this.describeCache(),
      peers: () => this.describePeers(),
      metrics: async () => await this.metrics()
    })
    this.closers.push(async () => { await admin.close() })

    if (this.config.acceptModel === 'reuseport') this.checkMigrateRequests()
    // Warm join before the workers serve: a restarted node is not cold.
    if (this.sync !== undefined) {
      const received = await this.sync.warmJoin(this.config.warmJoinTimeout * 1000)
      this.log.info({ sessions: received, l2: this.cache.l2.size }, 'warm join done')
    }
    this.warm = true
    this.refreshHealth()
    await this.workers.start()
    this.sampler.start()
    this.closers.push(async () => { this.sampler.stop() })
    this.log.info({
      listen: this.config.listen.map(formatHostPort),
      backend: formatHostPort(backend),
      workers: this.config.workers,
      admin: formatHostPort(this.config.adminListen),
      certificates: this.certificates.map((c) => ({ file: c.path, names: c.names })),
      node: this.config.nodeId,
      sessionTickets: this.config.sessionTickets,
      sync: this.config.syncListen === 'off' ? 'off' : formatHostPort(this.config.syncListen),
      agent: this.config.agentListen === 'off' ? 'off' : formatHostPort(this.config.agentListen),
      state: this.state.admin,
      haproxy: this.coordinator === undefined ? 'off' : `${this.config.haproxySocket} ${this.coordinator.backend}/${this.coordinator.server}`
    }, 'tlsfleet node ready')
  }

  /** Install signal handling: SIGTERM/SIGINT stop gracefully, SIGHUP reloads certificates. */
  handleSignals (): void {
    // SIGHUP means "reload" here, not "exit" (close-with-grace treats it as a termination signal).
    closeWithGrace({ delay: this.config.gracePeriod * 1000 + 5000, skip: ['SIGHUP'] }, async ({ signal, err }) => {
      if (err !== undefined) this.log.error({ err }, 'fatal error, shutting down')
      else this.log.info({ signal }, 'shutting down')
      await this.stop()
    })
    process.on('SIGHUP', () => { void this.reloadCertificates() })
  }

  async reloadCertificates (): Promise<boolean> {
    try {
      this.certificates = await this.loadCertificates()
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'certificate reload refused; keeping the current certificates')
      return false
    }
    this.workers.broadcast({ t: 'certificates', certificates: this.certificates })
    this.log.info({ certificates: this.certificates.map((c) => c.path) }, 'certificates reloaded')
    return true
  }

  /** Stop accepting, let workers finish open connections within the grace period, exit. */
  async stop (): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.refreshHealth()
    // Tell HAProxy at once (the agent says "drain down #stopping" from now on too), so no new
    // client is sent here while the workers close their listeners.
    if (this.coordinator !== undefined && this.state.admin === 'ready') await this.coordinator.applyState('drain')
    this.backendProbe?.stop()
    await this.workers.stop(this.config.gracePeriod * 1000)
    for (const close of this.closers) await close()
    this.log.info('stopped')
  }

  /** For `GET /health`: ok when the node is ready (admin state) and up (health). */
  health (): { ok: boolean; state: AdminState; health: 'up' | 'down'; reason?: string } {
    this.refreshHealth()
    const snap = this.state.snapshot()
    const reason = snap.reason ?? (snap.admin !== 'ready' ? `state is ${snap.admin}` : undefined)
    return { ok: snap.health === 'up' && snap.admin === 'ready', state: snap.admin, health: snap.health, ...(reason !== undefined ? { reason } : {}) }
  }

  /** `PUT /v1/state`: change the admin state, and tell HAProxy at once when a socket is set. */
  async setState (body: PutStateBody): Promise<PutStateResponse> {
    const moveClients = body.moveClients === true
    if (moveClients && this.coordinator === undefined) {
      throw new AdminRequestError(409, 'Conflict', 'moveClients needs --haproxy-socket and --haproxy-server (the node clears HAProxy\'s stick table through its Runtime API); nothing was changed')
    }
    const previous = this.state.admin
    const changed = this.state.setAdmin(body.state)
    if (changed) this.log.info({ state: body.state, previous }, 'admin state changed')
    const result: PutStateResponse = { state: this.state.admin, previous, changed }
    if (this.coordinator !== undefined) {
      const commands = await this.coordinator.applyState(body.state, { moveClients })
      result.haproxy = { ok: commands.every((c) => c.ok), commands }
    }
    return result
  }

  /** `POST /v1/clients/move`: forget this node's persistence entries in HAProxy. */
  async moveClients (): Promise<HaproxyResult> {
    if (this.coordinator === undefined) {
      throw new AdminRequestError(409, 'Conflict', 'moving clients needs --haproxy-socket and --haproxy-server (the node clears HAProxy\'s stick table through its Runtime API)')
    }
    const commands = await this.coordinator.moveClients()
    return { ok: commands.every((c) => c.ok), commands }
  }

  async describeState (): Promise<StateBody> {
    this.refreshHealth()
    const snap = this.state.snapshot()
    const sample = this.sampler.latest
    const body: StateBody = {
      node: this.config.nodeId,
      state: snap.admin,
      health: snap.health,
      ...(snap.reason !== undefined ? { reason: snap.reason } : {}),
      effective: snap.effective,
      agentReply: formatAgentReply(this.state.agentReply()).trimEnd(),
      weightPercent: snap.weightPercent,
      ...(snap.spareCapacity !== undefined ? { spareCapacity: snap.spareCapacity } : {}),
      ...(snap.maxconn !== undefined ? { maxconn: snap.maxconn } : {}),
      ...(snap.changedAt !== undefined ? { changedAt: snap.changedAt } : {}),
      workers: { configured: this.config.workers, listening: this.workers.listening.size },
      connections: sample?.connections ?? 0,
      handshakes: { ...(sample?.handshakes ?? { full: 0, resumed: 0 }), perSecond: sample?.handshakesPerSecond ?? 0 },
      ...(sample?.eventLoopUtilization !== undefined ? { eventLoopUtilization: sample.eventLoopUtilization } : {}),
      ...(sample !== undefined ? { sampledAt: sample.at.toISOString() } : {})
    }
    if (this.coordinator !== undefined) body.haproxy = await this.coordinator.view()
    return body
  }

  describeCache (): CacheBody {
    const l2 = this.cache.l2
    const sample = this.sampler.latest
    return {
      l2: { entries: l2.size, bytes: l2.bytes, hits: l2.hits, misses: l2.misses, maxEntries: this.config.cacheSize, maxBytes: this.config.cacheMaxBytes },
      l1: (sample?.workers ?? []).map((w) => ({ ...(w.pid !== undefined ? { pid: w.pid } : {}), entries: w.l1.entries, bytes: w.l1.bytes, hits: w.l1.hits, misses: w.l1.misses })),
      ...(sample !== undefined ? { sampledAt: sample.at.toISOString() } : {})
    }
  }

  describePeers (): PeersBody {
    return {
      sync: this.config.syncListen === 'off' ? 'off' : formatHostPort(this.config.syncListen),
      peers: this.sync?.peerList() ?? []
    }
  }

  async metrics (): Promise<{ contentType: string; body: string }> {
    const reports = await this.workers.collectReports()
    const merged = AggregatorRegistry.aggregate([await this.registry.getMetricsAsJSON(), ...reports.map((r) => r.metrics)])
    return { contentType: merged.contentType, body: await merged.metrics() }
  }

  /** New / Get / Del from a worker: L2 answers; a Del also reaches the other workers' L1. */
  private onSessionMessage (worker: ClusterWorker, message: SessionMessage): void {
    switch (message.t) {
      case 'session-new':
        this.cache.addLocal(message.id, { der: message.der, createdAt: message.createdAt })
        break
      case 'session-get': {
        const entry = this.cache.get(message.id)
        worker.send({ t: 'session-reply', req: message.req, der: entry?.der ?? null, createdAt: entry?.createdAt ?? 0 } satisfies PrimaryToWorker)
        break
      }
      case 'session-del':
        this.cache.deleteLocal(message.id)
        this.workers.broadcast({ t: 'session-del', id: message.id }, worker.id)
        break
    }
  }

  /**
   * With one SO_REUSEPORT listener per worker, connections waiting in a dying worker's accept
   * queue are reset unless the kernel migrates them (net.ipv4.tcp_migrate_req, Linux >= 5.14).
   */
  private checkMigrateRequests (): void {
    let value: string
    try {
      value = fs.readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim()
    } catch {
      return // not Linux, or a kernel without it: nothing to advise
    }
    if (value !== '1') {
      this.log.warn('net.ipv4.tcp_migrate_req is 0: connections queued on a worker that dies are reset; run "sysctl -w net.ipv4.tcp_migrate_req=1" or use --accept-model shared')
    }
  }

  private refreshHealth (): void {
    this.state.updateHealth({ workersListening: this.workers.listening.size, warm: this.warm, stopping: this.stopping })
  }

  /**
   * The admin API token, read at start. A non-loopback --admin-listen without a token is
   * refused: anyone who reaches the port could drain the node.
   */
  private adminToken (): string | undefined {
    const file = this.config.adminTokenFile
    if (file === '') {
      if (!isLoopbackHost(this.config.adminListen.host)) {
        throw new ConfigProblem(`--admin-listen ${formatHostPort(this.config.adminListen)} is not a loopback address: give --admin-token-file with a bearer token (e.g. openssl rand -hex 32 > admin.token; chmod 600 admin.token), or listen on 127.0.0.1`)
      }
      return undefined
    }
    try {
      return readTokenFile(file, { checkMode: true })
    } catch (err) {
      if (err instanceof AdminTokenError) throw new ConfigProblem(`--admin-token-file: ${err.message}`)
      throw err
    }
  }

  private setupHaproxy (): void {
    const socket = this.config.haproxySocket
    const server = this.config.haproxyServer
    if (socket === 'off') {
      if (server !== '') throw new ConfigProblem('--haproxy-server needs --haproxy-socket (the HAProxy Runtime API to talk to)')
      return
    }
    if (server === '') throw new ConfigProblem(`--haproxy-socket ${socket} needs --haproxy-server BACKEND/SERVER (this node's entry in HAProxy)`)
    try {
      this.coordinator = new HaproxyCoordinator({
        socket,
        server,
        ...(this.config.haproxyTable !== '' ? { table: this.config.haproxyTable } : {}),
        timeoutMs: 2000,
        onCommand: (outcome) => this.onHaproxyCommand(outcome)
      })
    } catch (err) {
      throw new ConfigProblem((err as Error).message)
    }
  }

  private onHaproxyCommand (outcome: CommandOutcome): void {
    const verb = outcome.command.split(' ').slice(0, 2).join(' ')
    this.haproxyCommands.inc({ command: verb, result: outcome.ok ? 'ok' : 'error' })
    if (outcome.ok) this.log.info({ command: outcome.command }, 'haproxy runtime API command done')
    else this.log.error({ command: outcome.command, error: outcome.error }, 'haproxy runtime API command failed')
  }

  private async startAgent (): Promise<void> {
    const listen = this.config.agentListen
    if (listen === 'off') return
    const replies = new Counter({ name: 'tlsfleet_agent_replies_total', help: 'Agent-check replies sent, by the state they reported', labelNames: ['state'] as const, registers: [this.registry] })
    const problems = new Counter({ name: 'tlsfleet_agent_input_errors_total', help: 'Agent port connections with bad input or cut by a bound, by reason', labelNames: ['reason'] as const, registers: [this.registry] })
    const agent = await startAgentServer({
      listen,
      reply: () => { this.refreshHealth(); return this.state.agentReply() },
      onAnswered: (reply) => replies.inc({ state: reply.health === 'down' ? 'down' : reply.admin }),
      onProblem: (reason) => problems.inc({ reason }),
      onError: (err) => this.log.error({ err: err.message }, 'agent error')
    }).catch((err: Error) => { throw new ConfigProblem(`--agent-listen ${formatHostPort(listen)}: ${err.message}`) })
    this.closers.push(async () => { await agent.close() })
  }

  private async startBackendProbe (backend: HostPort): Promise<void> {
    if (this.config.backendCheckInterval <= 0) return
    const reachable = new Gauge({ name: 'tlsfleet_backend_reachable', help: 'Whether the backend accepted the last TCP probe(s) (1) or not (0)', registers: [this.registry] })
    const probe = new BackendProbe({
      target: backend,
      intervalMs: this.config.backendCheckInterval * 1000,
      onChange: (ok) => {
        reachable.set(ok ? 1 : 0)
        this.state.updateHealth({ backendReachable: ok })
        if (ok) this.log.info({ backend: formatHostPort(backend) }, 'backend reachable')
        else this.log.error({ backend: formatHostPort(backend) }, 'backend unreachable: the agent reports down')
      }
    })
    await probe.start()
    this.backendProbe = probe
  }

  private registerAgentMetrics (): Counter<'command' | 'result'> {
    const state = this.state
    const refresh = (): void => this.refreshHealth()
    new Gauge({
      name: 'tlsfleet_agent_state',
      help: 'State the agent reports: 1 for the current one (down when unhealthy, else the admin state)',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect () {
        refresh()
        const effective = state.snapshot().effective
        for (const s of ['ready', 'drain', 'maint', 'down'] as const) this.set({ state: s }, s === effective ? 1 : 0)
      }
    })
    new Gauge({ name: 'tlsfleet_agent_weight_percent', help: 'Weight percent the agent reports (spare capacity, smoothed)', registers: [this.registry], collect () { this.set(state.snapshot().weightPercent) } })
    new Gauge({ name: 'tlsfleet_spare_capacity_ratio', help: 'Smoothed spare capacity 0..1 behind the agent weight', registers: [this.registry], collect () { this.set(state.snapshot().spareCapacity ?? 1) } })
    return new Counter({ name: 'tlsfleet_haproxy_commands_total', help: 'HAProxy Runtime API commands sent by this node, by command and result', labelNames: ['command', 'result'] as const, registers: [this.registry] })
  }

  private async loadCertificates (): Promise<CertificateBundle[]> {
    let files = this.config.cert
    if (files.length === 0) {
      const { file, created } = await ensureSelfSignedCertificate(this.config.stateDir)
      if (created) this.log.warn({ file }, 'no --cert given: generated a self-signed certificate for localhost')
      files = [file]
    }
    return files.map((file) => loadCertificateFile(file))
  }

  /**
   * Farm sync: New/Del of our workers go to the peers; Del from peers reaches our workers' L1.
   * Without --sync-listen the node stands alone.
   */
  private async startSync (): Promise<void> {
    const listen = this.config.syncListen
    if (listen === 'off') return
    let studHmacKey: Buffer | undefined
    if (this.config.syncFormat === 'v2' && this.farmKeys.length === 0) {
      throw new ConfigProblem('--sync-listen needs --sync-secret-file with the farm secret (sync format v2 authenticates and encrypts every packet)')
    }
    if (this.config.syncFormat === 'stud') {
      const first = this.certificates[0] as CertificateBundle
      try {
        studHmacKey = studHmacKeyFromPrivateKeyPem(first.key)
      } catch (err) {
        throw new ConfigProblem(`--sync-format stud: ${(err as Error).message} (first --cert is "${first.path}")`)
      }
    }
    const sync = new SyncService({
      listen,
      peers: this.config.syncPeer,
      multicastInterface: this.config.syncInterface,
      format: this.config.syncFormat,
      farmKeys: this.farmKeys,
      ...(studHmacKey !== undefined ? { studHmacKey } : {}),
      nodeName: this.config.nodeId,
      sessionTimeoutSeconds: this.config.sessionTimeout,
      maxSkewSeconds: this.config.syncMaxSkew
    }, this.cache, this.log, this.registry)
    await sync.start()
    this.sync = sync
    this.closers.push(async () => { await sync.close() })
    this.cache.on('local-new', (id, entry) => sync.publishNew(id, entry))
    this.cache.on('local-del', (id) => sync.publishDel(id))
    sync.on('remote-del', (id) => this.workers.broadcast({ t: 'session-del', id }))
  }

  /**
   * The secrets ticket keys derive from: one per farm secret (so every node of the farm issues
   * and accepts the same tickets), or a random one when the node stands alone (its workers
   * still share tickets). Empty when tickets are off.
   */
  private ticketSecrets (): Buffer[] {
    if (this.config.sessionTickets === 'off') return []
    if (this.farmKeys.length === 0) return [crypto.randomBytes(32)]
    return this.farmKeys.map((key) => deriveKey(key, 'tlsfleet tls ticket secret', 32))
  }

  private async startBackend (): Promise<HostPort> {
    if (this.config.backend !== 'demo') return this.config.backend
    const demo = await startDemoBackend({ host: '127.0.0.1', port: 0 })
    this.closers.push(demo.close)
    this.log.info({ backend: formatHostPort(demo.address) }, 'no --backend given: serving the built-in demo backend')
    return demo.address
  }
}

/** A startup refusal caused by the combination of options; shown like a config error. */
export class ConfigProblem extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigProblem'
  }
}
