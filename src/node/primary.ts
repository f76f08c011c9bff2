import cluster, { type Worker as ClusterWorker } from 'node:cluster'
import { fileURLToPath } from 'node:url'
import closeWithGrace from 'close-with-grace'
import { AggregatorRegistry, collectDefaultMetrics, Gauge, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client'
import { startAdminServer } from '../admin/admin-server.js'
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
import { createLogger, type Logger } from '../util/logger.js'
import { isWorkerMessage, type L1Stats, type PrimaryToWorker, type WorkerToPrimary } from './messages.js'
import { workerSettings, type WorkerSettings } from './worker-settings.js'

type WorkerMetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>
interface WorkerReport { metrics: WorkerMetricsJson; l1: L1Stats; eventLoopUtilization: number; activeConnections: number }

/**
 * The primary ("father"): owns L2, the admin API and (later) the farm sync and HAProxy agent;
 * forks the workers and replaces those that die. It never accepts a client connection: with
 * the default accept model every worker has its own SO_REUSEPORT listener.
 */
export class Primary {
  readonly cache: PrimarySessionCache
  private readonly log: Logger
  private certificates: CertificateBundle[] = []
  private settings!: WorkerSettings
  private readonly listening = new Set<number>()
  private readonly pendingReports = new Map<number, { remaining: Set<number>; reports: WorkerReport[]; resolve: (r: WorkerReport[]) => void }>()
  private nextReq = 1
  private stopping = false
  private readonly restarts: number[] = []
  private readonly registry = new Registry()
  private closers: Array<() => Promise<void>> = []
  private farmKeys: FarmKey[] = []
  sync?: SyncService
  /** False until the warm join (session snapshot from peers) is over. */
  private warm = false

  constructor (readonly config: NodeConfig) {
    this.log = createLogger({ level: config.logLevel, format: config.logFormat, name: 'primary' })
    this.cache = new PrimarySessionCache({
      maxEntries: config.cacheSize,
      maxBytes: config.cacheMaxBytes,
      lifetimeSeconds: config.sessionTimeout
    })
    collectDefaultMetrics({ register: this.registry })
    const cache = this.cache
    new Gauge({ name: 'tlsfleet_session_cache_entries', help: 'Sessions held in L2', registers: [this.registry], collect () { this.set(cache.l2.size) } })
    new Gauge({ name: 'tlsfleet_session_cache_bytes', help: 'Approximate bytes held by L2', registers: [this.registry], collect () { this.set(cache.l2.bytes) } })
    const listening = this.listening
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
    this.certificates = await this.loadCertificates()
    this.farmKeys = loadFarmSecrets(this.config.syncSecretFile)
    await this.startSync()
    const backend = await this.startBackend()
    this.settings = workerSettings(this.config, backend, this.ticketSecrets())
    const admin = await startAdminServer(this.config.adminListen, {
      health: () => this.health(),
      metrics: async () => await this.metrics()
    })
    this.closers.push(async () => { await admin.close() })

    if (this.config.acceptModel === 'shared') cluster.schedulingPolicy = cluster.SCHED_NONE
    cluster.setupPrimary({
      exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)),
      serialization: 'advanced'
    })
    cluster.on('message', (worker, message: unknown) => { if (isWorkerMessage(message)) this.onWorkerMessage(worker, message) })
    cluster.on('exit', (worker, code, signal) => this.onWorkerExit(worker, code, signal))
    // Warm join before the workers serve: a restarted node is not cold.
    if (this.sync !== undefined) {
      const received = await this.sync.warmJoin(this.config.warmJoinTimeout * 1000)
      this.log.info({ sessions: received, l2: this.cache.l2.size }, 'warm join done')
    }
    this.warm = true
    await this.forkAll()
    this.log.info({
      listen: this.config.listen.map(formatHostPort),
      backend: formatHostPort(backend),
      workers: this.config.workers,
      admin: formatHostPort(this.config.adminListen),
      certificates: this.certificates.map((c) => ({ file: c.path, names: c.names })),
      node: this.config.nodeId,
      sessionTickets: this.config.sessionTickets,
      sync: this.config.syncListen === 'off' ? 'off' : formatHostPort(this.config.syncListen)
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
    this.broadcast({ t: 'certificates', certificates: this.certificates })
    this.log.info({ certificates: this.certificates.map((c) => c.path) }, 'certificates reloaded')
    return true
  }

  /** Stop accepting, let workers finish open connections within the grace period, exit. */
  async stop (): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    const graceMs = this.config.gracePeriod * 1000
    const exited = Promise.all(Object.values(cluster.workers ?? {}).map(async (worker) => {
      if (worker === undefined || worker.isDead()) return
      await new Promise<void>((resolve) => {
        worker.once('exit', () => resolve())
        worker.send({ t: 'shutdown', graceMs } satisfies PrimaryToWorker)
      })
    }))
    const deadline = setTimeout(() => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL')
    }, graceMs + 2000)
    await exited
    clearTimeout(deadline)
    for (const close of this.closers) await close()
    this.log.info('stopped')
  }

  health (): { ok: boolean; reason?: string } {
    if (this.stopping) return { ok: false, reason: 'stopping' }
    if (!this.warm) return { ok: false, reason: 'warming up (waiting for a session snapshot from peers)' }
    if (this.listening.size === 0) return { ok: false, reason: 'no live worker' }
    return { ok: true }
  }

  /** Ask every live worker for its counters; missing answers after `timeoutMs` are skipped. */
  async collectReports (timeoutMs = 1000): Promise<WorkerReport[]> {
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is ClusterWorker => w !== undefined && this.listening.has(w.id))
    if (workers.length === 0) return []
    const req = this.nextReq++
    return await new Promise((resolve) => {
      const entry = { remaining: new Set(workers.map((w) => w.id)), reports: [] as WorkerReport[], resolve }
      this.pendingReports.set(req, entry)
      setTimeout(() => { if (this.pendingReports.delete(req)) resolve(entry.reports) }, timeoutMs).unref()
      for (const worker of workers) worker.send({ t: 'report-request', req } satisfies PrimaryToWorker)
    })
  }

  async metrics (): Promise<{ contentType: string; body: string }> {
    const reports = await this.collectReports()
    const merged = AggregatorRegistry.aggregate([await this.registry.getMetricsAsJSON(), ...reports.map((r) => r.metrics)])
    return { contentType: merged.contentType, body: await merged.metrics() }
  }

  private onWorkerMessage (worker: ClusterWorker, message: WorkerToPrimary): void {
    switch (message.t) {
      case 'ready':
        worker.send({ t: 'init', settings: this.settings, certificates: this.certificates } satisfies PrimaryToWorker)
        break
      case 'listening':
        this.listening.add(worker.id)
        worker.emit('tlsfleet:listening')
        break
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
        this.broadcast({ t: 'session-del', id: message.id }, worker.id)
        break
      case 'report': {
        const pending = this.pendingReports.get(message.req)
        if (pending === undefined) break
        pending.reports.push({ metrics: message.metrics as WorkerMetricsJson, l1: message.l1, eventLoopUtilization: message.eventLoopUtilization, activeConnections: message.activeConnections })
        pending.remaining.delete(worker.id)
        if (pending.remaining.size === 0) {
          this.pendingReports.delete(message.req)
          pending.resolve(pending.reports)
        }
        break
      }
      case 'drained':
        break
    }
  }

  private onWorkerExit (worker: ClusterWorker, code: number | null, signal: string | null): void {
    this.listening.delete(worker.id)
    for (const [req, pending] of this.pendingReports) {
      if (pending.remaining.delete(worker.id) && pending.remaining.size === 0) {
        this.pendingReports.delete(req)
        pending.resolve(pending.reports)
      }
    }
    if (this.stopping) return
    // Replace it; back off when workers keep dying right after start (bad port, crash loop).
    const now = Date.now()
    this.restarts.push(now)
    while (this.restarts.length > 0 && (this.restarts[0] as number) < now - 30_000) this.restarts.shift()
    const delay = this.restarts.length > 5 ? Math.min(10_000, 250 * 2 ** (this.restarts.length - 5)) : 0
    this.log.warn({ worker: worker.process.pid, code, signal, restartInMs: delay }, 'worker died; replacing it')
    setTimeout(() => { if (!this.stopping) cluster.fork() }, delay)
  }

  private async forkAll (): Promise<void> {
    const started = Array.from({ length: this.config.workers }, async () => {
      const worker = cluster.fork()
      await new Promise<void>((resolve, reject) => {
        worker.once('tlsfleet:listening', resolve)
        worker.once('exit', (code) => reject(new Error(`worker exited with code ${String(code)} before listening (is ${this.config.listen.map(formatHostPort).join(', ')} free?)`)))
      })
    })
    await Promise.all(started)
  }

  private broadcast (message: PrimaryToWorker, except?: number): void {
    for (const worker of Object.values(cluster.workers ?? {})) {
      if (worker !== undefined && worker.id !== except && worker.isConnected()) worker.send(message)
    }
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
    sync.on('remote-del', (id) => this.broadcast({ t: 'session-del', id }))
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
