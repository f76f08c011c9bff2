import crypto from 'node:crypto'
import fs from 'node:fs'
import closeWithGrace from 'close-with-grace'
import { loadAdminToken, type AdminCredentials } from '../admin/admin-auth.js'
import { startAdminServer } from '../admin/admin-server.js'
import { NodeAdmin } from '../admin/node-admin.js'
import { startAgentServer } from '../agent/agent-server.js'
import { BackendProbe } from '../agent/backend-probe.js'
import { LoadSampler } from '../agent/load-sampler.js'
import { NodeState } from '../agent/node-state.js'
import { L2Responder } from '../cache/l2-responder.js'
import { PrimarySessionCache } from '../cache/primary-session-cache.js'
import { formatHostPort, type HostPort } from '../config/host-port.js'
import { checkOptionCombinations } from '../config/node-checks.js'
import type { NodeConfig } from '../config/options.js'
import { startDemoBackend } from '../demo/demo-backend.js'
import { ConfigConflictError, ListenError } from '../errors.js'
import { HaproxyCoordinator } from '../haproxy/coordinator.js'
import { PrimaryMetrics } from '../metrics/primary-metrics.js'
import { createSyncCodec, type SyncCodec } from '../sync/codecs.js'
import { deriveKey, type FarmKey } from '../sync/farm-keys.js'
import { loadFarmSecrets } from '../sync/farm-secret.js'
import { SyncService } from '../sync/sync-service.js'
import { loadCertificateFile, type CertificateBundle } from '../tls/certificates.js'
import { ensureSelfSignedCertificate } from '../tls/self-signed.js'
import { createLogger, type Logger } from '../util/logger.js'
import { checkListenAddresses } from './listen-check.js'
import { WorkerPool } from './worker-pool.js'
import { workerSettings, type WorkerSettings } from './worker-settings.js'

/** How often the workers' load is sampled for the agent's weight (and /v1/state, /v1/cache). */
const SAMPLE_INTERVAL_MS = 1000

/**
 * The primary ("father") of a node. It wires the parts together and runs the start and stop
 * order; each part owns its concern: L2 and its answers to the workers (cache/), the workers
 * (WorkerPool), the agent's state (agent/), the farm sync (sync/), the admin API and its views
 * (admin/), metrics (metrics/), HAProxy's Runtime API (haproxy/). It never accepts a client
 * connection: with the default accept model every worker has its own SO_REUSEPORT listener.
 */
export class Primary {
  readonly cache: PrimarySessionCache
  /** Admin state, health and weight: what the agent and the admin API report. */
  readonly state: NodeState
  private readonly log: Logger
  private readonly metrics: PrimaryMetrics
  private readonly workers: WorkerPool
  private readonly sampler: LoadSampler
  private certificates: CertificateBundle[] = []
  private settings?: WorkerSettings
  private coordinator?: HaproxyCoordinator
  private sync?: SyncService
  private backendProbe?: BackendProbe
  private closers: Array<() => Promise<void>> = []
  private stopping = false

  constructor (readonly config: NodeConfig) {
    this.log = createLogger({ level: config.logLevel, format: config.logFormat, name: 'primary' })
    this.cache = new PrimarySessionCache({ maxEntries: config.cacheSize, maxBytes: config.cacheMaxBytes, lifetimeSeconds: config.sessionTimeout })
    this.state = new NodeState({ initial: config.initialState, maxconn: config.maxconn, maxHandshakesPerSecond: config.maxHandshakeRate })
    const l2 = new L2Responder(this.cache, {
      reply: (worker, notice) => this.workers.send(worker, notice),
      broadcast: (notice, except) => this.workers.broadcast(notice, except)
    })
    this.workers = new WorkerPool({
      size: config.workers,
      acceptModel: config.acceptModel,
      init: () => ({ t: 'init', settings: this.settings as WorkerSettings, certificates: this.certificates }),
      onSessionRequest: (worker, request) => l2.handle(worker, request),
      onListeningChange: (listening) => this.state.updateHealth({ workersListening: listening }),
      onWorkerExit: (pid) => this.metrics.workerExited(pid),
      log: this.log
    })
    this.metrics = new PrimaryMetrics({
      l2: () => ({ entries: this.cache.l2.size, bytes: this.cache.l2.bytes }),
      workers: () => ({ configured: config.workers, listening: this.workers.listening.size }),
      state: () => this.state.snapshot()
    })
    this.sampler = new LoadSampler({
      intervalMs: SAMPLE_INTERVAL_MS,
      collect: async (timeoutMs) => await this.workers.collectReports(timeoutMs, { metrics: false }),
      listening: () => this.workers.listening.size,
      onSample: (sample) => {
        if (sample.eventLoopUtilization !== undefined) this.state.updateLoad({ eventLoopUtilization: sample.eventLoopUtilization, handshakesPerSecond: sample.handshakesPerSecond })
      },
      onError: (err) => this.log.warn({ err }, 'load sample failed')
    })
  }

  /**
   * Everything that can be refused is checked before anything binds (options, files, the TLS
   * addresses); then the agent answers "down" while the rest starts, the farm's sessions are
   * fetched (warm join), and only then do the workers serve.
   */
  async start (): Promise<void> {
    const config = this.config
    checkOptionCombinations(config)
    const credentials = loadAdminToken(config.adminTokenFile, config.stateDir)
    this.coordinator = this.createCoordinator()
    this.certificates = await this.loadCertificates()
    const farmKeys = loadFarmSecrets(config.syncSecretFile)
    const codec = config.syncListen === 'off' ? undefined : createSyncCodec({ format: config.syncFormat, farmKeys, certificates: this.certificates, nodeName: config.nodeId, sessionTimeoutSeconds: config.sessionTimeout, maxSkewSeconds: config.syncMaxSkew })
    await checkListenAddresses(config.listen)

    await this.startAgent()
    if (codec !== undefined && config.syncListen !== 'off') await this.startSync(config.syncListen, codec)
    const backend = await this.startBackend()
    await this.startBackendProbe(backend)
    this.settings = workerSettings(config, backend, ticketSecrets(config, farmKeys))
    await this.startAdmin(credentials)

    if (config.acceptModel === 'reuseport') this.checkMigrateRequests()
    // Warm join before the workers serve: a restarted node is not cold.
    if (this.sync !== undefined) {
      const received = await this.sync.warmJoin(config.warmJoinTimeout * 1000)
      this.log.info({ sessions: received, l2: this.cache.l2.size }, 'warm join done')
    }
    this.state.updateHealth({ warm: true })
    await this.workers.start()
    this.sampler.start()
    this.closers.push(async () => { this.sampler.stop() })
    this.log.info({
      listen: config.listen.map(formatHostPort),
      backend: formatHostPort(backend),
      workers: config.workers,
      admin: formatHostPort(config.adminListen),
      certificates: this.certificates.map((c) => ({ file: c.path, names: c.names })),
      node: config.nodeId,
      sessionTickets: config.sessionTickets,
      sync: config.syncListen === 'off' ? 'off' : formatHostPort(config.syncListen),
      agent: config.agentListen === 'off' ? 'off' : formatHostPort(config.agentListen),
      state: this.state.admin,
      haproxy: this.coordinator === undefined ? 'off' : `${config.haproxySocket} ${this.coordinator.backend}/${this.coordinator.server}`
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
      this.log.error({ err }, 'certificate reload refused; keeping the current certificates')
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
    this.state.updateHealth({ stopping: true })
    // Tell HAProxy at once (the agent says "drain down #stopping" from now on too), so no new
    // client is sent here while the workers close their listeners.
    if (this.coordinator !== undefined && this.state.admin === 'ready') await this.coordinator.applyState('drain')
    this.backendProbe?.stop()
    await this.workers.stop(this.config.gracePeriod * 1000)
    for (const close of this.closers) await close()
    this.log.info('stopped')
  }

  private createCoordinator (): HaproxyCoordinator | undefined {
    if (this.config.haproxySocket === 'off') return undefined
    try {
      return new HaproxyCoordinator({
        socket: this.config.haproxySocket,
        server: this.config.haproxyServer,
        ...(this.config.haproxyTable !== '' ? { table: this.config.haproxyTable } : {}),
        timeoutMs: 2000,
        onCommand: (outcome) => {
          const verb = outcome.command.split(' ').slice(0, 2).join(' ')
          this.metrics.haproxyCommands.inc({ command: verb, result: outcome.ok ? 'ok' : 'error' })
          if (outcome.ok) this.log.info({ command: outcome.command }, 'haproxy runtime API command done')
          else this.log.error({ command: outcome.command, error: outcome.error }, 'haproxy runtime API command failed')
        }
      })
    } catch (err) {
      throw new ConfigConflictError((err as Error).message)
    }
  }

  private async startAdmin (credentials: AdminCredentials): Promise<void> {
    const listen = this.config.adminListen
    const allowUnauthenticated = this.config.adminAllowUnauthenticated === 'on'
    const views = new NodeAdmin({
      node: { id: this.config.nodeId, workers: this.config.workers, cacheSize: this.config.cacheSize, cacheMaxBytes: this.config.cacheMaxBytes, syncListen: this.config.syncListen },
      state: this.state,
      sample: () => this.sampler.latest,
      listening: () => this.workers.listening.size,
      cache: this.cache,
      ...(this.coordinator !== undefined ? { coordinator: this.coordinator } : {}),
      ...(this.sync !== undefined ? { peers: this.sync.peerList.bind(this.sync) } : {}),
      metrics: async () => await this.metrics.page(async () => await this.workers.collectReports()),
      log: this.log
    })
    const admin = await startAdminServer({
      listen,
      log: this.log,
      onResponse: (status) => this.metrics.adminRequests.inc({ status: String(status) }),
      token: credentials.token,
      readsNeedToken: credentials.explicit,
      allowUnauthenticated,
      allowHosts: this.config.adminAllowHost
    }, views).catch((err: unknown) => { throw new ListenError('--admin-listen', formatHostPort(listen), err) })
    this.closers.push(async () => { await admin.close() })
    if (allowUnauthenticated) this.log.warn('--admin-allow-unauthenticated on: anyone who reaches the admin API can drain or stop this node')
    else if (!credentials.explicit) this.log.info({ tokenFile: credentials.file }, 'admin API: state changes need the bearer token in this file (tlsfleet drain/ready/maint read it from --state-dir)')
  }

  private async startAgent (): Promise<void> {
    const listen = this.config.agentListen
    if (listen === 'off') return
    const agent = await startAgentServer({
      listen,
      reply: () => this.state.agentReply(),
      onAnswered: (reply) => this.metrics.agentReplies.inc({ state: reply.health === 'down' ? 'down' : reply.admin }),
      onProblem: (reason) => this.metrics.agentInputErrors.inc({ reason }),
      onError: (err) => this.log.error({ err }, 'agent error')
    }).catch((err: unknown) => { throw new ListenError('--agent-listen', formatHostPort(listen), err) })
    this.closers.push(async () => { await agent.close() })
  }

  /**
   * Farm sync: New/Del of our workers go to the peers; Del from peers reaches our workers' L1.
   * Without --sync-listen the node stands alone.
   */
  private async startSync (listen: HostPort, codec: SyncCodec): Promise<void> {
    const sync = new SyncService({ listen, peers: this.config.syncPeer, multicastInterface: this.config.syncInterface, codec }, this.cache, this.log, this.metrics.registry)
    await sync.start()
    this.sync = sync
    this.closers.push(async () => { await sync.close() })
    this.cache.on('local-new', (id, entry) => sync.publishNew(id, entry))
    this.cache.on('local-del', (id) => sync.publishDel(id))
    sync.on('remote-del', (id) => this.workers.broadcast({ t: 'session-del', id }))
  }

  private async startBackendProbe (backend: HostPort): Promise<void> {
    if (this.config.backendCheckInterval <= 0) return
    const probe = new BackendProbe({
      target: backend,
      intervalMs: this.config.backendCheckInterval * 1000,
      onChange: (ok) => {
        this.metrics.backendReachable.set(ok ? 1 : 0)
        this.state.updateHealth({ backendReachable: ok })
        if (ok) this.log.info({ backend: formatHostPort(backend) }, 'backend reachable')
        else this.log.error({ backend: formatHostPort(backend) }, 'backend unreachable: the agent reports down')
      }
    })
    await probe.start()
    this.backendProbe = probe
  }

  private async startBackend (): Promise<HostPort> {
    if (this.config.backend !== 'demo') return this.config.backend
    const demo = await startDemoBackend({ host: '127.0.0.1', port: 0 })
    this.closers.push(demo.close)
    this.log.info({ backend: formatHostPort(demo.address) }, 'no --backend given: serving the built-in demo backend')
    return demo.address
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
}

/**
 * The secrets ticket keys derive from: one per farm secret (so every node of the farm issues
 * and accepts the same tickets), or a random one when the node stands alone (its workers
 * still share tickets). Empty when tickets are off.
 */
function ticketSecrets (config: NodeConfig, farmKeys: FarmKey[]): Buffer[] {
  if (config.sessionTickets === 'off') return []
  if (farmKeys.length === 0) return [crypto.randomBytes(32)]
  return farmKeys.map((key) => deriveKey(key, 'tlsfleet tls ticket secret', 32))
}
