import fs from 'node:fs'
import { LoadSampler, type LoadSample } from '../agent/load-sampler.js'
import { L2Responder } from '../cache/l2-responder.js'
import type { PrimarySessionCache } from '../cache/primary-session-cache.js'
import { formatHostPort } from '../config/host-port.js'
import type { NodeConfig } from '../config/options.js'
import { loadCertificateFile, type CertificateBundle } from '../tls/certificates.js'
import { ensureSelfSignedCertificate } from '../tls/self-signed.js'
import type { Logger } from '../util/logger.js'
import { checkListenAddresses } from './listen-check.js'
import type { NodeTerminator, TerminatorHooks, TerminatorMetrics, TerminatorStart, TerminatorStatus } from './terminator-part.js'
import { WorkerPool } from './worker-pool.js'
import { workerSettings, type WorkerSettings } from './worker-settings.js'

/** How often the workers' load is sampled for the agent's weight (and /v1/state, /v1/cache). */
const SAMPLE_INTERVAL_MS = 1000

/**
 * `--terminator tlsfleet`: the node's own workers terminate TLS. Owns the certificates, the
 * worker pool (with the L2 answers to their L1 caches) and the once-a-second load sample.
 */
export class WorkerTerminator implements NodeTerminator {
  readonly kind = 'tlsfleet'
  readonly forwardsToBackend = true
  private readonly workers: WorkerPool
  private readonly sampler: LoadSampler
  private bundles: CertificateBundle[] = []
  private settings?: WorkerSettings

  constructor (private readonly config: NodeConfig, cache: PrimarySessionCache, private readonly log: Logger, hooks: TerminatorHooks) {
    const l2 = new L2Responder(cache, {
      reply: (worker, notice) => this.workers.send(worker, notice),
      broadcast: (notice, except) => this.workers.broadcast(notice, except)
    })
    this.workers = new WorkerPool({
      size: config.workers,
      acceptModel: config.acceptModel,
      init: () => ({ t: 'init', settings: this.settings as WorkerSettings, certificates: this.bundles }),
      onSessionRequest: (worker, request) => l2.handle(worker, request),
      onListeningChange: (listening) => hooks.onHealth(listening > 0 ? { serving: true } : { serving: false, reason: 'no live worker' }),
      ...(hooks.onWorkerExit !== undefined ? { onWorkerExit: hooks.onWorkerExit } : {}),
      log
    })
    this.sampler = new LoadSampler({
      intervalMs: SAMPLE_INTERVAL_MS,
      collect: async (timeoutMs) => await this.workers.collectReports(timeoutMs, { metrics: false }),
      listening: () => this.workers.listening.size,
      onSample: (sample) => {
        if (sample.eventLoopUtilization !== undefined) hooks.onLoad({ busy: sample.eventLoopUtilization, handshakesPerSecond: sample.handshakesPerSecond })
      },
      onError: (err) => log.warn({ err }, 'load sample failed')
    })
  }

  get workersConfigured (): number { return this.config.workers }

  async prepare (): Promise<void> {
    this.bundles = await this.loadCertificates()
    await checkListenAddresses(this.config.listen)
  }

  certificates (): CertificateBundle[] { return this.bundles }

  async start (context: TerminatorStart): Promise<void> {
    if (context.backend === undefined) throw new Error('the tlsfleet terminator needs a backend')
    this.settings = workerSettings(this.config, context.backend, context.ticketSecrets)
    if (this.config.acceptModel === 'reuseport') this.checkMigrateRequests()
    await this.workers.start()
    this.sampler.start()
  }

  async stop (graceMs: number): Promise<void> {
    this.sampler.stop()
    await this.workers.stop(graceMs)
  }

  async reload (): Promise<boolean> {
    try {
      this.bundles = await this.loadCertificates()
    } catch (err) {
      this.log.error({ err }, 'certificate reload refused; keeping the current certificates')
      return false
    }
    this.workers.broadcast({ t: 'certificates', certificates: this.bundles })
    this.log.info({ certificates: this.bundles.map((c) => c.path) }, 'certificates reloaded')
    return true
  }

  dropSession (id: Buffer): void { this.workers.broadcast({ t: 'session-del', id }) }

  sample (): LoadSample | undefined { return this.sampler.latest }

  listening (): number { return this.workers.listening.size }

  async metrics (): Promise<TerminatorMetrics[]> {
    return await this.workers.collectReports()
  }

  status (): TerminatorStatus {
    const listening = this.workers.listening.size
    return { kind: 'tlsfleet', serving: listening > 0, ...(listening > 0 ? {} : { reason: 'no live worker' }) }
  }

  describe (): Record<string, unknown> {
    return {
      terminator: 'tlsfleet',
      listen: this.config.listen.map(formatHostPort),
      workers: this.config.workers,
      certificates: this.bundles.map((c) => ({ file: c.path, names: c.names }))
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
