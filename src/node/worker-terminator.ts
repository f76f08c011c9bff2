import fs from 'node:fs'
import { Counter, Gauge, Registry } from 'prom-client'
import { certificateAttention } from '../admin/certificate-attention.js'
import type { CertificatesBody } from '../admin/schemas.js'
import { LoadSampler, type LoadSample } from '../agent/load-sampler.js'
import { DELS_PER_SECOND, L2Responder, MAX_PENDING_GETS } from '../cache/l2-responder.js'
import type { PrimarySessionCache } from '../cache/primary-session-cache.js'
import { formatCidr } from '../config/cidr.js'
import { formatHostPort } from '../config/host-port.js'
import { namedAsGiven, optionOrigin } from '../config/load.js'
import type { NodeConfig } from '../config/options.js'
import { checkOcspDir } from '../ocsp/ocsp-dir.js'
import { proxyTrustWarning } from '../proxy/proxy-trust.js'
import { OcspStapler } from '../ocsp/ocsp-stapler.js'
import type { CertificateBundle } from '../tls/certificates.js'
import { alpnBackendWarning } from '../tls/connection-tlvs.js'
import { checkBundleUsable, rememberingCheck } from '../tls/secure-contexts.js'
import { selfSignedFile } from '../tls/self-signed.js'
import { loadTlsMaterial, type LoadedTlsMaterial, type TlsMaterial } from '../tls/tls-material.js'
import { resolveTlsPolicy, type TlsPolicy } from '../tls/tls-policy.js'
import type { Logger } from '../util/logger.js'
import { trustedOwners } from '../util/safe-files.js'
import { checkListenAddresses } from './listen-check.js'
import { dropPrivileges, inaccessibleAs, resolveRunAs, type RunAs } from './privileges.js'
import { handStateDirTo } from './state-dir.js'
import type { NodeTerminator, TerminatorHooks, TerminatorMetrics, TerminatorStart, TerminatorStatus } from './terminator-part.js'
import { TicketKeyFeed } from './ticket-key-feed.js'
import { DEFAULT_BACKOFF, type WorkerRestarts } from './restart-backoff.js'
import { workerPoolHealth } from './worker-health.js'
import { WorkerPool } from './worker-pool.js'
import { workerSettings, type WorkerSettingsBase } from './worker-settings.js'

/** How often the workers' load is sampled for the agent's weight (and /v1/state, /v1/cache). */
const SAMPLE_INTERVAL_MS = 1000

/**
 * `--terminator tlsfleet`: the node's own workers terminate TLS. Owns the TLS material
 * (certificates, client CA, CRL) and policy, OCSP stapling, the worker pool (with the L2
 * answers to their L1 caches), the once-a-second load sample, and the switch to --user (the
 * workers bind, so only once they listen can the node stop being root).
 */
export class WorkerTerminator implements NodeTerminator {
  readonly kind = 'tlsfleet'
  readonly forwardsToBackend = true
  private readonly workers: WorkerPool
  private readonly sampler: LoadSampler
  private material: TlsMaterial = { certificates: [], clientAuth: {} }
  private policy?: TlsPolicy
  /** Bundles the policy admits, remembered across reloads (the check builds a context per file). */
  private usable?: (bundle: CertificateBundle) => void
  /** --user/--group, resolved when the node is built: refused before anything is read or written. */
  readonly runAs: RunAs | undefined
  private stapler?: OcspStapler
  /** Series counted in this process (worker restarts, the OCSP stapler): merged into /metrics with the workers'. */
  private readonly ownRegistry = new Registry()
  private readonly reloads = new Counter({ name: 'tlsfleet_certificate_reloads_total', help: 'Certificate reloads (SIGHUP) by result: ok (the workers got the new files; --cert-dir files refused are logged), refused (a --cert, --crt-list, --client-ca or --crl file broken: the current certificates stay)', labelNames: ['result'] as const, registers: [this.ownRegistry] })
  private readonly refusedMessages = new Counter({ name: 'tlsfleet_worker_messages_refused_total', help: 'Messages from a worker the primary refused unread: malformed (not a message of the protocol), session (a New, Get or Del whose ID, session or date is out of bounds), report (counts that are not counts, metrics that are not metrics or too many), out_of_turn (a second ready, a listener handed over late), too_many_gets (1024 Gets of one worker held already: answered "no session"), too_many_dels (past 1000 Dels a second from one worker: not applied). A bug in a worker, or a compromised one', labelNames: ['reason'] as const, registers: [this.ownRegistry] })
  private readonly restarts = new Counter({ name: 'tlsfleet_worker_restarts_total', help: 'Worker processes replaced while the node served: died on their own (crash, out of memory, killed from outside) or hung (no answer to the primary for --worker-hang-timeout, or not listening by its start deadline: killed)', labelNames: ['reason'] as const, registers: [this.ownRegistry] })
  private settings?: WorkerSettingsBase
  /** The ticket secrets stay here: the workers get the keys of the acceptable epochs from it. */
  private ticketKeys?: TicketKeyFeed
  /**
   * The reload under way, if any: the next one waits for it. The first link is prepare()'s own
   * load of the material (and of the stapler), so a SIGHUP during the start waits for it, then
   * reads the files again: run alongside it, both found no self-signed certificate and made one
   * each, and a reload before prepare() would have checked the files with no TLS policy yet.
   * Deferred, not ignored: a certificate replaced during the start is still picked up.
   */
  private reloading: Promise<unknown>
  /** The reload waiting for the one under way, if any: SIGHUPs meanwhile join it (a burst of them is one reload, not one each). */
  private queuedReload?: Promise<boolean>
  /** Settles the first link of `reloading`: whether prepare() loaded the material. */
  private firstLoadDone: (loaded: boolean) => void = () => {}
  private readonly firstLoad: Promise<boolean>

  constructor (private readonly config: NodeConfig, cache: PrimarySessionCache, private readonly log: Logger, hooks: TerminatorHooks) {
    this.firstLoad = new Promise<boolean>((resolve) => { this.firstLoadDone = resolve })
    this.reloading = this.firstLoad
    for (const reason of ['died', 'hung']) this.restarts.inc({ reason }, 0)
    for (const reason of ['malformed', 'session', 'report', 'out_of_turn', 'too_many_gets', 'too_many_dels']) this.refusedMessages.inc({ reason }, 0)
    const restartStatus = (): WorkerRestarts => this.workers.restartStatus()
    // A gauge to alert on: replacements held back because workers keep dying.
    new Gauge({
      name: 'tlsfleet_worker_crash_loop',
      help: `Whether the workers are in a crash loop (1): they keep dying, and their replacements wait (up to ${DEFAULT_BACKOFF.capMs / 1000} s) until none has died for ${DEFAULT_BACKOFF.quietResetMs / 1000} s`,
      registers: [this.ownRegistry],
      collect () { this.set(restartStatus().crashLoop ? 1 : 0) }
    })
    for (const result of ['ok', 'refused']) this.reloads.inc({ result }, 0)
    // When each served certificate expires (a Unix time, as blackbox_exporter's
    // probe_ssl_earliest_cert_expiry): alert on it minus time() before clients start refusing.
    const material = (): TlsMaterial => this.material
    new Gauge({
      name: 'tlsfleet_certificate_expiry_timestamp_seconds',
      help: 'When each certificate the node serves expires (its notAfter, seconds since the Unix epoch), by file and first name',
      labelNames: ['file', 'name'] as const,
      registers: [this.ownRegistry],
      collect () {
        this.reset()
        for (const bundle of material().certificates) {
          const notAfter = Date.parse(bundle.notAfter)
          if (Number.isFinite(notAfter)) this.set({ file: bundle.path, name: bundle.names[0] ?? '' }, Math.floor(notAfter / 1000))
        }
      }
    })
    this.runAs = resolveRunAs(config.user, config.group)
    const l2 = new L2Responder(cache, {
      reply: (worker, notice) => this.workers.send(worker, notice),
      broadcast: (notice, except) => this.workers.broadcast(notice, except),
      tooManyGets: (worker) => this.workers.refuse(worker, { reason: 'too_many_gets', detail: `more than ${MAX_PENDING_GETS} Gets waiting for an answer` }),
      tooManyDels: (worker) => this.workers.refuse(worker, { reason: 'too_many_dels', detail: `more than ${DELS_PER_SECOND} Dels a second` })
    }, config.cacheMissWait)
    this.workers = new WorkerPool({
      size: config.workers,
      acceptModel: config.acceptModel,
      // The keys of the moment, for a replacement worker too (the pushes it missed are in them).
      init: () => ({ t: 'init', settings: { ...this.settings as WorkerSettingsBase, ticketKeys: this.ticketKeys?.all() ?? { runs: [] } }, material: this.material, staples: this.stapler?.staples() ?? [] }),
      onSessionRequest: (worker, request) => l2.handle(worker, request),
      onRefused: (refusal) => this.refusedMessages.inc({ reason: refusal.reason }),
      listeners: config.listen.length,
      // Read live, not pushed as a snapshot: a crash loop that ends while no worker listens
      // (no listening change to push) left its "replacements wait 8 s" in the agent's reason.
      onListeningChange: () => hooks.onHealth(() => workerPoolHealth(this.workers.listening.size, config.workers, this.workers.restartStatus())),
      onWorkerExit: (pid, why, final) => {
        if (why !== 'stopped') this.restarts.inc({ reason: why })
        this.sampler.workerExited(pid, final)
        hooks.onWorkerExit?.(pid, final?.metrics)
      },
      keepListeners: config.user !== '',
      niceSteps: config.workerNice,
      hangTimeoutMs: Math.round(config.workerHangTimeout * 1000),
      log
    })
    this.sampler = new LoadSampler({
      intervalMs: SAMPLE_INTERVAL_MS,
      collect: async (timeoutMs) => await this.workers.collectReports(timeoutMs, { metrics: false }),
      listening: () => this.workers.listening.size,
      onSample: (sample) => {
        if (sample.eventLoopUtilization === undefined) return
        const limit = sample.connectionLimit
        hooks.onLoad({
          busy: sample.eventLoopUtilization,
          handshakesPerSecond: sample.handshakesPerSecond,
          ...(limit !== undefined ? { connectionLimit: limit, connectionFill: sample.connections / limit } : {})
        })
      },
      onError: (err) => log.warn({ err }, 'load sample failed')
    })
  }

  get workersConfigured (): number { return this.config.workers }
  readonly metricsInProcess = false

  async prepare (): Promise<void> {
    const config = this.config
    let loaded = false
    try {
      this.policy = resolveTlsPolicy(config)
      this.material = (await this.loadMaterial()).material
      if (config.ocspDir !== '') {
        checkOcspDir(config.ocspDir, this.runAs)
        await this.loadStapler(config.ocspDir)
      }
      loaded = true
    } finally {
      // Reloads asked meanwhile (SIGHUP during the start) run from here on, one after the other.
      this.firstLoadDone(loaded)
    }
    if (this.runAs !== undefined) this.warnUnreadableAfterSwitch(this.runAs)
    await checkListenAddresses(config.listen)
    const proxyWarning = proxyTrustWarning(config.proxyProtocolIn, config.proxyFrom)
    if (proxyWarning !== undefined) this.log.warn(proxyWarning)
    const alpnWarning = alpnBackendWarning(config)
    if (alpnWarning !== undefined) this.log.warn(namedAsGiven(config, alpnWarning))
  }

  certificates (): CertificateBundle[] { return this.material.certificates }

  async start (context: TerminatorStart): Promise<void> {
    if (context.backend === undefined) throw new Error('the tlsfleet terminator needs a backend')
    this.settings = workerSettings(this.config, context.backend, { policy: this.policy as TlsPolicy, runAs: this.runAs })
    const feed = new TicketKeyFeed({
      secrets: context.ticketSecrets,
      rotationSeconds: this.config.ticketRotation,
      // A ticket cannot outlive its session: OpenSSL refuses sessions older than the timeout.
      lifetimeSeconds: this.config.sessionTimeout,
      push: (keys) => this.workers.broadcast({ t: 'ticket-keys', keys })
    })
    this.ticketKeys = feed
    // Before the workers start: a rotation while they do reaches those already forked, and the
    // others get its keys in their settings.
    feed.start()
    if (this.config.acceptModel === 'reuseport') this.checkMigrateRequests()
    await this.workers.start()
    if (this.workers.stopping) return // stopped while the workers started: they are gone
    // Everything that needs root is done: the workers bound their listeners (and switched once
    // they had), the primary read the keys, secrets and tokens and bound its own listeners.
    if (this.runAs !== undefined) {
      handStateDirTo(this.runAs, this.config.stateDir, [...context.stateFiles, ...this.selfSignedFiles()], this.log)
      dropPrivileges(this.runAs)
      this.log.info({ user: this.runAs.user, uid: this.runAs.uid, group: this.runAs.group, gid: this.runAs.gid }, 'running as --user')
    }
    this.stapler?.start()
    this.sampler.start()
  }

  beginStop (): void { this.workers.beginStop() }

  async stop (graceMs: number): Promise<number> {
    this.ticketKeys?.stop()
    this.stapler?.stop()
    this.sampler.stop()
    const killed = await this.workers.stop(graceMs)
    if (killed.length > 0) this.log.error({ pids: killed, gracePeriodMs: graceMs }, 'workers still running 2 s after the grace period (hung): killed')
    return killed.length
  }

  /**
   * SIGHUP: certificates (--cert, --crt-list, --cert-dir), the client CA and the CRL, read and checked again.
   * Reloads run one after the other: two SIGHUPs in quick succession interleaved at their awaits,
   * and the earlier one's results (material, staples) could land after the later one's. At most
   * one waits: 200 SIGHUPs from a deploy script were 200 full reloads of a --cert-dir in a row.
   */
  async reload (): Promise<boolean> {
    // A reload still waiting its turn reads the files after this SIGHUP too: join it. (One
    // already running may have read them before the change this SIGHUP announces: queue one.)
    if (this.queuedReload !== undefined) return await this.queuedReload
    const run = this.reloading.then(async () => {
      this.queuedReload = undefined
      return await this.reloadOnce()
    })
    this.queuedReload = run
    this.reloading = run.then(() => {}, () => {})
    return await run
  }

  private async reloadOnce (): Promise<boolean> {
    // The start failed to load the files (it is refused and the node exits): nothing to reload.
    if (!await this.firstLoad) return false
    let loaded: LoadedTlsMaterial
    try {
      loaded = await this.loadMaterial()
    } catch (err) {
      this.reloads.inc({ result: 'refused' })
      this.log.error({ err }, 'certificate reload refused; keeping the current certificates')
      return false
    }
    this.reloads.inc({ result: 'ok' })
    // The staples go with the certificates: a replaced certificate sent first was served
    // unstapled until its staple followed (a must-staple one failed those handshakes).
    const staples = await this.stapler?.setCertificates(loaded.material.certificates)
    this.material = loaded.material
    this.workers.broadcast({ t: 'tls-material', material: this.material, ...(staples !== undefined ? { staples } : {}) })
    // Files of --cert-dir refused (each named in an error above): the reload went ahead without them.
    const certificates = this.material.certificates.map((c) => c.path)
    const withoutStaple = this.stapler?.withoutStaple() ?? []
    const fields = { certificates, ...(loaded.refusedFiles > 0 ? { refusedFiles: loaded.refusedFiles } : {}), ...(withoutStaple.length > 0 ? { withoutStaple } : {}) }
    if (loaded.refusedFiles > 0) this.log.warn(fields, 'certificates reloaded')
    else this.log.info(fields, 'certificates reloaded')
    return true
  }

  setTicketSecrets (secrets: Buffer[]): void { this.ticketKeys?.setSecrets(secrets) }

  dropSession (id: Buffer): void { this.workers.broadcast({ t: 'session-del', id }) }

  sample (): LoadSample | undefined { return this.sampler.latest }

  listening (): number { return this.workers.listening.size }

  workerRestarts (): WorkerRestarts { return this.workers.restartStatus() }

  async metrics (): Promise<TerminatorMetrics[]> {
    const reports: TerminatorMetrics[] = await this.workers.collectReports()
    reports.push({ pid: process.pid, metrics: await this.ownRegistry.getMetricsAsJSON() })
    return reports
  }

  status (): TerminatorStatus {
    const { serving, reason } = workerPoolHealth(this.workers.listening.size, this.config.workers, this.workers.restartStatus())
    return { kind: 'tlsfleet', serving, ...(reason !== undefined ? { reason } : {}) }
  }

  certificateView (): CertificatesBody {
    const now = Date.now()
    const stapler = this.stapler
    return {
      terminator: 'tlsfleet',
      ocspStapling: stapler !== undefined,
      certificates: this.material.certificates.map((bundle, i) => {
        const notAfter = Date.parse(bundle.notAfter)
        const expiresInDays = Math.floor((notAfter - now) / 86_400_000)
        const ocsp = stapler?.stapleState(bundle.path)
        return {
          file: bundle.path,
          names: bundle.names,
          ...(i === 0 ? { default: true } : {}),
          keyType: bundle.keyType,
          ...(bundle.curve !== undefined ? { curve: bundle.curve } : {}),
          notAfter: new Date(notAfter).toISOString(),
          expiresInDays,
          ...(ocsp !== undefined ? { ocsp } : {}),
          attention: certificateAttention(expiresInDays, ocsp)
        }
      })
    }
  }

  describe (): Record<string, unknown> {
    return {
      terminator: 'tlsfleet',
      listen: this.config.listen.map(formatHostPort),
      workers: this.config.workers,
      ...(this.config.maxConnections > 0 ? { maxConnections: this.config.maxConnections } : {}),
      ...(this.config.proxyProtocolIn !== 'off' ? { proxyProtocolIn: this.config.proxyProtocolIn, proxyFrom: this.config.proxyFrom.length > 0 ? this.config.proxyFrom.map((c) => c === 'any' ? c : formatCidr(c)) : 'any (warned)' } : {}),
      certificates: this.material.certificates.map((c) => ({ file: c.path, names: c.names })),
      tls: {
        profile: this.policy?.profile,
        versions: `${this.policy?.minVersion ?? '?'}-${this.policy?.maxVersion ?? '?'}`,
        alpn: this.config.alpn,
        clientVerify: this.config.clientVerify,
        ocspStapling: this.stapler !== undefined
      },
      ...(this.runAs !== undefined ? { user: this.runAs.user } : {})
    }
  }

  private async loadMaterial (): Promise<LoadedTlsMaterial> {
    const { cert, certDir, stateDir, clientCa, crl } = this.config
    const policy = this.policy as TlsPolicy
    const sigalgsOrigin = optionOrigin(this.config, 'sigalgs')
    this.usable ??= rememberingCheck((bundle) => checkBundleUsable(bundle, policy, sigalgsOrigin))
    const origins = {
      certOrigin: optionOrigin(this.config, 'cert'),
      certDirOrigin: optionOrigin(this.config, 'cert-dir'),
      clientCaOrigin: optionOrigin(this.config, 'client-ca'),
      crlOrigin: optionOrigin(this.config, 'crl'),
      crtListOrigin: optionOrigin(this.config, 'crt-list')
    }
    const crtListGlobals = { policyOptions: this.config, clientVerify: this.config.clientVerify, alpn: this.config.alpn, sessionTickets: this.config.sessionTickets === 'on' }
    const loaded = await loadTlsMaterial({ cert, certDir, crtList: this.config.crtList, crtListGlobals, ...origins, stateDir, stateOwners: trustedOwners(this.runAs?.uid), clientCa, crl, usable: this.usable }, this.log)
    // A crt-list line's own alpn reaches the backend as --alpn does: the same warning, by line.
    const warned = new Set<string>()
    for (const served of loaded.material.served ?? []) {
      const line = served.settings
      if (line === undefined || line.alpn === this.config.alpn || warned.has(line.alpn.join(','))) continue
      const warning = alpnBackendWarning({ ...this.config, alpn: line.alpn })
      if (warning === undefined) continue
      warned.add(line.alpn.join(','))
      this.log.warn({ line: line.origin }, namedAsGiven(this.config, warning.replace(/^--alpn /, 'alpn ')))
    }
    return loaded
  }

  /** Responses kept on disk are loaded now, so the first workers staple at once; fetching starts with start(). */
  private async loadStapler (dir: string): Promise<void> {
    const stapler = new OcspStapler({
      dir,
      refreshIntervalMs: this.config.ocspRefreshInterval * 1000,
      onChange: (staples) => this.workers.broadcast({ t: 'ocsp-staples', staples }),
      registry: this.ownRegistry,
      log: this.log
    })
    await stapler.setCertificates(this.material.certificates)
    this.stapler = stapler
  }

  /** The self-signed certificate in --state-dir, when the node serves it (no --cert, no --cert-dir). */
  private selfSignedFiles (): string[] {
    return this.config.cert.length === 0 && this.config.certDir === '' && this.config.crtList.length === 0 ? [selfSignedFile(this.config.stateDir)] : []
  }

  /** After the switch, SIGHUP re-reads these files as --user: say now if it will not be able to. */
  private warnUnreadableAfterSwitch (runAs: RunAs): void {
    const { cert, certDir, clientCa, crl, crtList } = this.config
    // The self-signed certificate is the node's own: handed to --user with --state-dir at the switch.
    const handedOver = this.selfSignedFiles()
    const paths = [...cert, ...crtList, ...this.material.certificates.map((c) => c.path), certDir, clientCa, crl].filter((p) => p !== '' && !handedOver.includes(p))
    const unreadable = inaccessibleAs(runAs, [...new Set(paths)].map((path) => ({ path, access: 'read' })))
    if (unreadable.length > 0) this.log.warn({ user: runAs.user, files: unreadable }, 'these files are not readable by --user: certificate reloads (SIGHUP) will fail until they are')
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
