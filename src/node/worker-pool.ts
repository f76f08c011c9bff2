import cluster, { type Worker as ClusterWorker } from 'node:cluster'
import { fileURLToPath } from 'node:url'
import type { MetricObjectWithValues, MetricValue } from 'prom-client'
import type { Logger } from '../util/logger.js'
import { isWorkerMessage, type L1Stats, type PrimaryToWorker, type WorkerToPrimary } from './messages.js'

export type WorkerMetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>
export interface WorkerReport { pid: number; metrics: WorkerMetricsJson; l1: L1Stats; eventLoopUtilization: number; activeConnections: number; handshakes: { full: number; resumed: number } }

/** The session-cache messages a worker sends; the primary's cache answers them. */
export type SessionMessage = Extract<WorkerToPrimary, { t: 'session-new' | 'session-get' | 'session-del' }>

export interface WorkerPoolOptions {
  size: number
  acceptModel: 'reuseport' | 'shared'
  /** The listen addresses, for the error when workers cannot bind. */
  listenDescription: string
  /** The `init` message a new worker gets (settings and certificates of the moment). */
  init: () => PrimaryToWorker
  onSessionMessage: (worker: ClusterWorker, message: SessionMessage) => void
  /** Called when the set of listening workers changes (health depends on it). */
  onChange: () => void
  log: Logger
}

/** Restarts within this window count towards the crash-loop back-off. */
const RESTART_WINDOW_MS = 30_000

/**
 * The workers of a node, as the primary manages them with node:cluster: fork N, know which are
 * listening, replace those that die (backing off when they keep dying right after start, e.g. a
 * port taken), ask them for reports, broadcast to them, and stop them gracefully.
 */
export class WorkerPool {
  readonly listening = new Set<number>()
  private readonly pendingReports = new Map<number, { remaining: Set<number>; reports: WorkerReport[]; resolve: (r: WorkerReport[]) => void }>()
  private nextReq = 1
  private readonly restarts: number[] = []
  private stopping = false

  constructor (private readonly opts: WorkerPoolOptions) {}

  /** Fork every worker and resolve once all listen (reject if one exits before). */
  async start (): Promise<void> {
    // The shared-handle model: workers accept from one socket the primary holds (SCHED_NONE);
    // never round-robin, where the primary would accept every connection itself.
    if (this.opts.acceptModel === 'shared') cluster.schedulingPolicy = cluster.SCHED_NONE
    cluster.setupPrimary({
      exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)),
      serialization: 'advanced'
    })
    cluster.on('message', (worker, message: unknown) => { if (isWorkerMessage(message)) this.onMessage(worker, message) })
    cluster.on('exit', (worker, code, signal) => this.onExit(worker, code, signal))
    await Promise.all(Array.from({ length: this.opts.size }, async () => {
      const worker = cluster.fork()
      await new Promise<void>((resolve, reject) => {
        worker.once('tlsfleet:listening', resolve)
        worker.once('exit', (code) => reject(new Error(`worker exited with code ${String(code)} before listening (is ${this.opts.listenDescription} free?)`)))
      })
    }))
  }

  /** Ask every listening worker for its counters; answers missing after `timeoutMs` are skipped. */
  async collectReports (timeoutMs = 1000, opts: { metrics?: boolean } = {}): Promise<WorkerReport[]> {
    const workers = this.workers().filter((w) => this.listening.has(w.id))
    if (workers.length === 0) return []
    const req = this.nextReq++
    return await new Promise((resolve) => {
      const entry = { remaining: new Set(workers.map((w) => w.id)), reports: [] as WorkerReport[], resolve }
      this.pendingReports.set(req, entry)
      setTimeout(() => { if (this.pendingReports.delete(req)) resolve(entry.reports) }, timeoutMs).unref()
      for (const worker of workers) worker.send({ t: 'report-request', req, ...(opts.metrics === false ? { metrics: false } : {}) } satisfies PrimaryToWorker)
    })
  }

  broadcast (message: PrimaryToWorker, except?: number): void {
    for (const worker of this.workers()) {
      if (worker.id !== except && worker.isConnected()) worker.send(message)
    }
  }

  /** Tell every worker to stop accepting and finish within `graceMs`; kill what is left after. */
  async stop (graceMs: number): Promise<void> {
    this.stopping = true
    const exited = Promise.all(this.workers().map(async (worker) => {
      if (worker.isDead()) return
      await new Promise<void>((resolve) => {
        worker.once('exit', () => resolve())
        worker.send({ t: 'shutdown', graceMs } satisfies PrimaryToWorker)
      })
    }))
    const deadline = setTimeout(() => {
      for (const worker of this.workers()) worker.process.kill('SIGKILL')
    }, graceMs + 2000)
    await exited
    clearTimeout(deadline)
  }

  private workers (): ClusterWorker[] {
    return Object.values(cluster.workers ?? {}).filter((w): w is ClusterWorker => w !== undefined)
  }

  private onMessage (worker: ClusterWorker, message: WorkerToPrimary): void {
    switch (message.t) {
      case 'ready':
        worker.send(this.opts.init())
        break
      case 'listening':
        this.listening.add(worker.id)
        this.opts.onChange()
        worker.emit('tlsfleet:listening')
        break
      case 'session-new':
      case 'session-get':
      case 'session-del':
        this.opts.onSessionMessage(worker, message)
        break
      case 'report': {
        const pending = this.pendingReports.get(message.req)
        if (pending === undefined) break
        pending.reports.push({ pid: message.pid, handshakes: message.handshakes, metrics: message.metrics as WorkerMetricsJson, l1: message.l1, eventLoopUtilization: message.eventLoopUtilization, activeConnections: message.activeConnections })
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

  private onExit (worker: ClusterWorker, code: number | null, signal: string | null): void {
    this.listening.delete(worker.id)
    this.opts.onChange()
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
    while (this.restarts.length > 0 && (this.restarts[0] as number) < now - RESTART_WINDOW_MS) this.restarts.shift()
    const delay = this.restarts.length > 5 ? Math.min(10_000, 250 * 2 ** (this.restarts.length - 5)) : 0
    this.opts.log.warn({ worker: worker.process.pid, code, signal, restartInMs: delay }, 'worker died; replacing it')
    setTimeout(() => { if (!this.stopping) cluster.fork() }, delay)
  }
}
