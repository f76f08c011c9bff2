import crypto from 'node:crypto'
import fs from 'node:fs'
import closeWithGrace from 'close-with-grace'
import { loadAdminToken, type AdminCredentials } from '../admin/admin-auth.js'
import { startAdminServer } from '../admin/admin-server.js'
import { NodeAdmin } from '../admin/node-admin.js'
import { NodeDashboard } from '../admin/node-dashboard.js'
import { startAgentServer } from '../agent/agent-server.js'
import { BackendProbe } from '../agent/backend-probe.js'
import { backendLookupFor } from '../proxy/backend-lookup.js'
import { NodeState } from '../agent/node-state.js'
import { ExpirySweep } from '../cache/expiry-sweep.js'
import { PrimarySessionCache } from '../cache/primary-session-cache.js'
import { formatHostPort, type HostPort } from '../config/host-port.js'
import { describeStoreTarget, type StoreTarget } from '../config/store-url.js'
import { optionOrigin } from '../config/load.js'
import { checkOptionCombinations } from '../config/node-checks.js'
import type { NodeConfig } from '../config/options.js'
import { startDemoBackend } from '../demo/demo-backend.js'
import { ConfigConflictError } from '../errors.js'
import { HaproxyCoordinator } from '../haproxy/coordinator.js'
import { HaproxyTerminator } from '../haproxy/haproxy-terminator.js'
import { HaproxyRestartWatch } from '../haproxy/restart-watch.js'
import { PrimaryMetrics } from '../metrics/primary-metrics.js'
import { createSyncCodec, type ReplayPersistence, type SyncCodec } from '../sync/codecs.js'
import type { FarmKey } from '../sync/farm-keys.js'
import { loadFarmSecrets } from '../sync/farm-secret.js'
import { FarmSecretFiles } from '../sync/farm-secret-reload.js'
import { startPeerSource } from '../sync/peer-source.js'
import { replayStateFile } from '../sync/replay-state.js'
import { isMulticast } from '../sync/sync-addresses.js'
import { SyncService } from '../sync/sync-service.js'
import { startSharedStore } from '../store/start-store.js'
import { loadStoreTls } from '../store/store-tls.js'
import type { SharedSessionStore } from '../store/shared-session-store.js'
import { farmTicketSecrets } from '../tls/farm-ticket-secret.js'
import { TicketKeySchedule } from '../tls/ticket-keys.js'
import { BurstLog } from '../util/burst-log.js'
import { createLogger, type Logger } from '../util/logger.js'
import { trustedOwners } from '../util/safe-files.js'
import { tcpListenError } from './listen-check.js'
import { inaccessibleAs } from './privileges.js'
import { stateDirAncestorProblems } from './state-dir.js'
import type { NodeTerminator, TerminatorHooks } from './terminator-part.js'
import { WorkerTerminator } from './worker-terminator.js'

/** Signals that stop the node gracefully; a second one forces the exit. */
const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const
/** A stop signal this soon after the first is the same request passed on by a parent, not a second one. */
const REPEATED_SIGNAL_MS = 1000

/**
 * The primary ("father") of a node. It wires the parts together and runs the start and stop
 * order; each part owns its concern: L2 (cache/), the TLS terminator (its workers, or a local
 * HAProxy it companions: NodeTerminator), the agent's state (agent/), the farm sync (sync/), the
 * admin API and its views (admin/), metrics (metrics/), the front HAProxy's Runtime API
 * (haproxy/). It never accepts a client connection: with the default accept model every worker
 * has its own SO_REUSEPORT listener.
 */
export class Primary {
  readonly cache: PrimarySessionCache
  /** Admin state, health and weight: what the agent and the admin API report. */
  readonly state: NodeState
  private readonly log: Logger
  private readonly metrics: PrimaryMetrics
  private readonly terminator: NodeTerminator
  private dashboard?: NodeDashboard
  private coordinator?: HaproxyCoordinator
  private restartWatch?: HaproxyRestartWatch
  private sync?: SyncService
  private store?: SharedSessionStore
  private backendProbe?: BackendProbe
  private codec?: SyncCodec
  /** --sync-secret-file's paths and the secrets read from them; undefined without the option. */
  private farmSecrets?: FarmSecretFiles
  /** Settles once start() is done: a farm secret reload waits for it (its consumers exist by then). */
  private started: Promise<void>
  private startDone: () => void = () => {}
  private closers: Array<() => Promise<void>> = []
  private stopping = false

  /** `warnings`: what the configuration's sources hold that is ignored (a misspelled TLSFLEET_* variable). */
  constructor (readonly config: NodeConfig, warnings: readonly string[] = []) {
    this.log = createLogger({ level: config.logLevel, format: config.logFormat, name: 'primary' })
    this.started = new Promise((resolve) => { this.startDone = resolve })
    // Before the checks: an ignored variable may be why a combination is refused.
    for (const warning of warnings) this.log.warn(warning)
    // Then: the parts below are built from these options (the terminator parses
    // --terminator-socket), so a refused combination must be named before they read them.
    checkOptionCombinations(config)
    this.cache = new PrimarySessionCache({ maxEntries: config.cacheSize, maxBytes: config.cacheMaxBytes, lifetimeSeconds: config.sessionTimeout })
    this.state = new NodeState({ initial: config.initialState, maxconn: config.maxconn, maxHandshakesPerSecond: config.maxHandshakeRate, connectionLimit: config.maxConnections })
    this.terminator = createTerminator(config, this.cache, this.log, {
      onHealth: (health) => this.state.updateHealth({ terminator: health }),
      onLoad: (load) => {
        this.state.updateLoad({
          eventLoopUtilization: load.busy,
          handshakesPerSecond: load.handshakesPerSecond,
          ...(load.connectionFill !== undefined ? { connectionFill: load.connectionFill } : {}),
          ...(load.connectionLimit !== undefined ? { connectionLimit: load.connectionLimit } : {})
        })
        const sample = this.terminator.sample()
        if (sample !== undefined) void this.dashboard?.record(sample, this.cache.l2)
      },
      onWorkerExit: (pid, final) => this.metrics.workerExited(pid, final)
    })
    // Until it serves, the agent gives the terminator's own reason (no live worker, haproxy not read yet).
    const { serving, reason } = this.terminator.status()
    this.state.updateHealth({ terminator: { serving, ...(reason !== undefined ? { reason } : {}) } })
    this.metrics = new PrimaryMetrics({
      l2: () => ({ entries: this.cache.l2.size, bytes: this.cache.l2.bytes }),
      workers: () => ({ configured: this.terminator.workersConfigured, listening: this.terminator.listening() }),
      state: () => this.state.snapshot()
    })
  }

  /**
   * Everything that can be refused is checked before anything binds (the option combinations
   * in the constructor; files, the TLS addresses or the local HAProxy here); then the agent
   * answers "down" while the rest starts, the farm's sessions are fetched (warm join), and only
   * then does the terminator serve.
   */
  async start (): Promise<void> {
    const config = this.config
    const credentials = loadAdminToken(config.adminTokenFile, config.stateDir, this.stateOwners())
    this.coordinator = this.createCoordinator()
    await this.terminator.prepare()
    const sweep = new ExpirySweep(this.cache.l2)
    this.closers.push(async () => { sweep.close() })
    const farmKeys = loadFarmSecrets(config.syncSecretFile)
    if (config.syncSecretFile.length > 0) {
      this.farmSecrets = new FarmSecretFiles(config.syncSecretFile, farmKeys)
      this.warnSecretsUnreadableAfterSwitch(config.syncSecretFile)
    }
    const codec = this.codec = config.syncListen === 'off' ? undefined : createSyncCodec({ format: config.syncFormat, farmKeys, certificates: this.terminator.certificates(), nodeName: config.nodeId, sessionTimeoutSeconds: config.sessionTimeout, maxSkewSeconds: config.syncMaxSkew, cipher: config.syncCipher, persistence: this.replayPersistence(config.syncListen) })
    // Made by now when the node keeps anything there (the token, the certificate, the replay state).
    if (fs.existsSync(config.stateDir)) {
      for (const problem of stateDirAncestorProblems(config.stateDir, this.stateOwners())) {
        this.log.warn({ stateDir: config.stateDir, ancestor: problem }, 'a directory above --state-dir lets another user replace it (and plant links a start as root would follow): give the node a state directory under directories only root or its own user may write')
      }
    }
    // hitch's sessions carry its one context ("hitch"); ours are per certificate unless told.
    if (codec !== undefined && config.syncFormat === 'stud' && config.sessionIdContext === '') {
      this.log.warn('--sync-format stud without --session-id-context: sessions made by hitch (context "hitch") do not resume here, nor ours on hitch; give --session-id-context hitch to share sessions with hitch nodes')
    }

    await this.startAgent()
    if (config.sessionStore !== 'off') await this.startStore(config.sessionStore, farmKeys)
    if (codec !== undefined && config.syncListen !== 'off') await this.startSync(config.syncListen, codec)
    const backend = await this.startBackend()
    if (backend !== undefined) await this.startBackendProbe(backend)
    // Computed once: the dashboard shows the schedule the terminator issues tickets under.
    const tickets = ticketSecrets(config, farmKeys)
    await this.startAdmin(credentials, tickets, farmKeys.length)

    // Warm join before the terminator serves: a restarted node is not cold.
    if (this.sync !== undefined) {
      const joined = await this.sync.warmJoin(config.warmJoinTimeout * 1000)
      const refused = Object.keys(joined.refused).length > 0 ? { refused: joined.refused } : {}
      this.log.info({ sessions: joined.sessions, peers: joined.responders, l2: this.cache.l2.size, ...refused }, 'warm join done')
      // A responder whose challenge we cannot open (another secret, a skewed clock) is no responder: say why the node starts cold.
      if (joined.responders === 0 && Object.keys(joined.refused).length > 0) {
        this.log.warn({ refused: joined.refused }, `warm join got nothing: the peers' packets were refused (${Object.entries(joined.refused).map(([r, n]) => `${r} ${String(n)}`).join(', ')}), so the node starts cold; the 'sync packets from ... are all refused' warning says why`)
      }
    }
    // A signal during the start: stop() is under way, nothing more is started.
    if (this.stopping) return
    this.state.updateHealth({ warm: true })
    // The node's own files in --state-dir; with --user they become that user's (state-dir.ts).
    const stateFiles = [...(credentials.explicit ? [] : [credentials.file]), ...(codec !== undefined && config.syncListen !== 'off' ? [this.replayPersistence(config.syncListen).file] : [])]
    await this.terminator.start({ backend, ticketSecrets: tickets, stateFiles })
    if (this.stopping) return
    this.startDone()
    this.log.info({
      ...this.terminator.describe(),
      backend: backend === undefined ? 'none' : formatHostPort(backend),
      admin: formatHostPort(config.adminListen),
      // Where a newcomer looks next: the live view of the node.
      dashboard: `http://${formatHostPort(config.adminListen)}/`,
      node: config.nodeId,
      sessionTickets: config.sessionTickets,
      sync: config.syncListen === 'off' ? 'off' : formatHostPort(config.syncListen),
      store: config.sessionStore === 'off' ? 'off' : describeStoreTarget(config.sessionStore),
      agent: config.agentListen === 'off' ? 'off' : formatHostPort(config.agentListen),
      state: this.state.admin,
      haproxy: this.coordinator === undefined ? 'off' : `${config.haproxySocket} ${this.coordinator.backend}/${this.coordinator.server}`
    }, 'tlsfleet node ready')
    // HAProxy keeps the drain our last stop set (a CLI state outlives the node). The agent's
    // first reply would undo it, but without agent-check nothing would: the node says its state
    // once it serves. Failures are logged and counted as every command's; the node serves anyway.
    // A restarted HAProxy forgets it (a CLI state does not outlive HAProxy): said again then.
    if (this.coordinator !== undefined) {
      const watch = this.restartWatch = this.createRestartWatch(this.coordinator)
      await watch.read() // the process the state below reaches
      await this.coordinator.applyState(this.state.admin)
      if (!this.stopping) watch.start()
    }
  }

  /** Install signal handling: SIGTERM/SIGINT stop gracefully, SIGHUP reloads certificates and farm secrets. */
  handleSignals (): void {
    // SIGHUP means "reload" here, not "exit" (close-with-grace treats it as a termination signal).
    // Its own messages (a timeout, a failed stop) go to our log, as JSON.
    const logger = { error: (what: unknown) => { this.log.error(what instanceof Error ? { err: what } : {}, what instanceof Error ? 'the stop failed' : String(what)) } }
    const grace = closeWithGrace({ delay: this.config.gracePeriod * 1000 + 5000, skip: ['SIGHUP', ...STOP_SIGNALS], logger }, async ({ signal, err }) => {
      if (err !== undefined) this.log.error({ err }, 'fatal error, shutting down')
      else if (signal !== undefined) this.log.info({ signal }, 'shutting down')
      await this.stop()
    })
    // SIGTERM and SIGINT are ours: a second one forces the exit, but not the same one delivered
    // twice. A terminal's Ctrl-C reaches `npm start`, its launcher and the node, and the first
    // two pass it on; systemd signals every process of the unit, and they pass it on too.
    let firstAt: number | undefined
    for (const signal of STOP_SIGNALS) {
      process.on(signal, () => {
        const now = Date.now()
        if (firstAt === undefined) {
          firstAt = now
          this.log.info({ signal }, 'shutting down')
          void grace.close()
        } else if (now - firstAt >= REPEATED_SIGNAL_MS) {
          this.log.error({ signal }, `second ${signal}, exiting`)
          process.exit(1)
        }
      })
    }
    process.on('SIGHUP', () => {
      void this.reloadFarmSecrets()
      void this.reloadCertificates()
    })
  }

  async reloadCertificates (): Promise<boolean> {
    return await this.terminator.reload()
  }

  /**
   * SIGHUP: the --sync-secret-file files read again (their paths are the start's). Other
   * secrets go to every consumer at once (the sync's seal and open, the store's, the ticket
   * keys of the workers or the local HAProxy, the dashboard); a refused file changes nothing;
   * the same secrets change nothing and log nothing. Waits for the start to be done: a SIGHUP
   * during it is applied once every consumer exists.
   */
  async reloadFarmSecrets (): Promise<'ok' | 'unchanged' | 'refused' | 'none'> {
    const secrets = this.farmSecrets
    if (secrets === undefined) return 'none'
    await this.started
    if (this.stopping) return 'none'
    const reload = secrets.reload()
    this.metrics.farmSecretReloads.inc({ result: reload.result === 'changed' ? 'ok' : reload.result })
    if (reload.result === 'refused') {
      this.log.error({ err: reload.error, file: reload.error.file, problem: reload.error.problem }, 'farm secret reload refused; keeping the current secrets')
      return 'refused'
    }
    if (reload.result === 'unchanged') return 'unchanged'
    const keys = reload.keys
    this.codec?.setFarmKeys?.(keys)
    this.store?.setFarmKeys(keys)
    const tickets = ticketSecrets(this.config, keys)
    if (tickets.length > 0) {
      this.terminator.setTicketSecrets(tickets)
      this.dashboard?.setTickets(this.ticketView(tickets, keys.length))
    }
    // Key ids only: public (every sync packet and stored value carries one), never the secrets.
    this.log.info({ sending: reload.after.sending, accepted: reload.after.accepted, before: reload.before }, 'farm secrets reloaded')
    return 'ok'
  }

  /** After the switch to --user, SIGHUP reads the farm secrets as that user: say now if it cannot. */
  private warnSecretsUnreadableAfterSwitch (files: string[]): void {
    const runAs = this.terminator.runAs
    if (runAs === undefined) return
    const unreadable = inaccessibleAs(runAs, files.map((path) => ({ path, access: 'read' as const })))
    if (unreadable.length > 0) this.log.warn({ user: runAs.user, files: unreadable }, 'these farm secret files are not readable by --user: farm secret reloads (SIGHUP) will be refused until they are (give them to the user, mode 0600)')
  }

  /** Stop accepting, let workers finish open connections within the grace period, exit. */
  async stop (): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    // Before the first await: systemd's KillMode=control-group sends SIGTERM to the workers as
    // well, and a worker that leaves while HAProxy is told below must not be replaced.
    this.terminator.beginStop()
    this.restartWatch?.stop()
    this.state.updateHealth({ stopping: true })
    // Tell HAProxy at once (the agent says "drain down #stopping" from now on too), so no new
    // client is sent here while the workers close their listeners.
    if (this.coordinator !== undefined && this.state.admin === 'ready') await this.coordinator.applyState('drain')
    this.backendProbe?.stop()
    const killed = await this.terminator.stop(this.config.gracePeriod * 1000)
    for (const close of this.closers) await close()
    // A forced stop is not a clean one: the exit status says so (1, as at the hard deadline).
    if (killed > 0) throw new Error(`${killed} worker process(es) hung past --grace-period and were killed`)
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
        onCommand: (outcome, err) => {
          const verb = outcome.command.split(' ').slice(0, 2).join(' ')
          this.metrics.haproxyCommands.inc({ command: verb, result: outcome.ok ? 'ok' : 'error' })
          if (outcome.ok) this.log.info({ command: outcome.command }, 'haproxy runtime API command done')
          // As every Runtime API failure is logged: the error under `err`, with its code
          // (TLSFLEET_ERR_HAPROXY_RUNTIME and HAProxy's reply when HAProxy refused).
          else this.log.error({ command: outcome.command, err: err ?? new Error(outcome.error ?? 'unknown error') }, 'haproxy runtime API command failed')
        }
      })
    } catch (err) {
      throw new ConfigConflictError((err as Error).message)
    }
  }

  /**
   * Reads the front HAProxy's `show info` every few seconds; a new process is told the node's
   * state again. Reads are counted as the other commands; failures logged once per burst.
   */
  private createRestartWatch (coordinator: HaproxyCoordinator): HaproxyRestartWatch {
    const socket = this.config.haproxySocket
    const failures = new BurstLog<Error>({
      quietMs: 15_000,
      onStart: (err) => this.log.error({ err, socket }, 'reading the front haproxy (show info) failed: a restart of it is noticed (and this node\'s state told again) once it answers'),
      onEnd: (failed, seconds) => this.log.info({ failed, seconds: Math.round(seconds), socket }, 'reading the front haproxy (show info): the burst of failures is over')
    })
    this.closers.push(async () => { failures.flush() })
    return new HaproxyRestartWatch(coordinator.api, {
      onRead: (err) => {
        this.metrics.haproxyCommands.inc({ command: 'show info', result: err === undefined ? 'ok' : 'error' })
        if (err !== undefined) failures.note(err)
      },
      onRestart: async (info) => {
        this.log.warn({ haproxyPid: info.pid, socket, state: this.state.admin }, 'the front haproxy restarted: telling it this node\'s state again (a new process keeps none set through its Runtime API)')
        await coordinator.applyState(this.state.admin)
      }
    })
  }

  private async startAdmin (credentials: AdminCredentials, tickets: Buffer[], farmSecrets: number): Promise<void> {
    const listen = this.config.adminListen
    const allowUnauthenticated = this.config.adminAllowUnauthenticated === 'on'
    this.dashboard = this.createDashboard(tickets, farmSecrets)
    const views = new NodeAdmin({
      node: { id: this.config.nodeId, workers: this.terminator.workersConfigured, cacheSize: this.config.cacheSize, cacheMaxBytes: this.config.cacheMaxBytes, syncListen: this.config.syncListen },
      state: this.state,
      sample: () => this.terminator.sample(),
      listening: () => this.terminator.listening(),
      ...(this.terminator.workerRestarts !== undefined ? { restarts: this.terminator.workerRestarts.bind(this.terminator) } : {}),
      terminator: () => this.terminator.status(),
      certificates: () => this.terminator.certificateView(),
      cache: this.cache,
      ...(this.coordinator !== undefined ? { coordinator: this.coordinator } : {}),
      ...(this.sync !== undefined ? { peers: this.sync.peerList.bind(this.sync) } : {}),
      ...(this.store !== undefined ? { store: this.store.status.bind(this.store) } : {}),
      metrics: async () => await this.metrics.page(async () => await this.terminator.metrics(), this.terminator.metricsInProcess ? 0 : undefined),
      dashboard: this.dashboard,
      log: this.log
    })
    const admin = await startAdminServer({
      listen,
      log: this.log,
      onResponse: (status) => this.metrics.adminRequests.inc({ status: String(status) }),
      onEvicted: () => this.metrics.adminEvictions.inc(),
      token: credentials.token,
      readsNeedToken: credentials.explicit,
      allowUnauthenticated,
      allowHosts: this.config.adminAllowHost
    }, views).catch((err: unknown) => { throw tcpListenError('--admin-listen', listen, err) })
    this.closers.push(async () => { await admin.close() })
    if (allowUnauthenticated) this.log.warn('--admin-allow-unauthenticated on: anyone who reaches the admin API can drain this node, put it in maintenance or move its clients')
    else if (!credentials.explicit) this.log.info({ tokenFile: credentials.file }, 'admin API: state changes need the bearer token in this file (tlsfleet drain/ready/maint read it from --state-dir)')
  }

  /** The dashboard's history and views; it shows the ticket keys the terminator issues under. */
  private createDashboard (tickets: Buffer[], farmSecrets: number): NodeDashboard {
    return new NodeDashboard({
      registry: this.metrics.registry,
      intervalSeconds: 1,
      ...(this.coordinator !== undefined ? { coordinator: this.coordinator } : {}),
      ...(tickets.length > 0 ? { tickets: this.ticketView(tickets, farmSecrets) } : {})
    })
  }

  /** The dashboard's ticket view: the first secret's schedule (it issues), and how many farm secrets are held. */
  private ticketView (tickets: Buffer[], farmSecrets: number): { schedule: TicketKeySchedule; farmWide: boolean; farmSecrets: number } {
    const secret = tickets[0] as Buffer
    return { schedule: new TicketKeySchedule({ secret, rotationSeconds: this.config.ticketRotation, lifetimeSeconds: this.config.sessionTimeout }), farmWide: farmSecrets > 0, farmSecrets }
  }

  private async startAgent (): Promise<void> {
    const listen = this.config.agentListen
    if (listen === 'off') return
    const agent = await startAgentServer({
      listen,
      reply: () => this.state.agentReply(),
      onAnswered: (state) => this.metrics.agentReplies.inc({ state }),
      onProblem: (reason) => this.metrics.agentInputErrors.inc({ reason }),
      onError: (err) => this.log.error({ err }, 'agent error')
    }).catch((err: unknown) => { throw tcpListenError('--agent-listen', listen, err) })
    this.closers.push(async () => { await agent.close() })
  }

  /**
   * The shared store, a third level behind L2: our New and Del are written there too, and an
   * L2 miss asks it (L2's `below`). Works with or without the farm sync.
   */
  private async startStore (target: StoreTarget, farmKeys: FarmKey[]): Promise<void> {
    const store = await startSharedStore({ target, tls: loadStoreTls(this.config.sessionStoreCa, this.config.sessionStoreCert, this.log, { ca: optionOrigin(this.config, 'session-store-ca'), cert: optionOrigin(this.config, 'session-store-cert') }), origin: optionOrigin(this.config, 'session-store'), farmKeys, prefix: this.config.sessionStorePrefix, lookupTimeoutMs: this.config.sessionStoreTimeout, remainingMs: (createdAt) => this.cache.l2.remainingMs(createdAt), lifetimeMs: this.config.sessionTimeout * 1000, maxSkewMs: this.config.syncMaxSkew * 1000, registry: this.metrics.registry, log: this.log })
    this.store = store
    this.closers.push(async () => { await store.close() })
    this.cache.below = async (id) => await store.lookup(id)
    this.cache.on('local-new', (id, entry) => store.write(id, entry))
    this.cache.on('local-del', (id) => store.remove(id))
  }

  /**
   * v2's replay window is kept in --state-dir across restarts, one file per sync address. With
   * multicast, nodes of one host share the group's address: the file is per TLS address too
   * (unique on a host and, unlike the default --node-id, the same after a restart).
   */
  private replayPersistence (listen: HostPort): ReplayPersistence {
    const first = this.config.listen[0]
    const tlsAddress = isMulticast(listen.host) && first !== undefined ? formatHostPort(first) : undefined
    const file = replayStateFile(this.config.stateDir, formatHostPort(listen), tlsAddress)
    return { file, log: this.log, owners: this.stateOwners() }
  }

  /** Who may own --state-dir and the files in it: root, this process's user and --user's. */
  private stateOwners (): number[] {
    return trustedOwners(this.terminator.runAs?.uid)
  }

  /**
   * Farm sync: New/Del of our workers go to the peers; Del from peers reaches our workers' L1.
   * Without --sync-listen the node stands alone.
   */
  private async startSync (listen: HostPort, codec: SyncCodec): Promise<void> {
    const peers = await startPeerSource({ peers: this.config.syncPeer, self: listen, refreshMs: this.config.syncPeerRefresh * 1000, server: this.config.syncDnsServer, log: this.log })
    this.closers.push(async () => { peers.close() })
    const sync = new SyncService({ listen, peers, multicastInterface: this.config.syncInterface, codec, recvBufferBytes: this.config.syncRecvBuffer }, this.cache, this.log, this.metrics.registry)
    await sync.start()
    this.sync = sync
    this.closers.push(async () => { await sync.close() })
    this.cache.on('local-new', (id, entry) => sync.publishNew(id, entry))
    this.cache.on('local-del', (id) => sync.publishDel(id))
    sync.on('remote-del', (id) => this.terminator.dropSession(id))
  }

  private async startBackendProbe (backend: HostPort): Promise<void> {
    if (this.config.backendCheckInterval <= 0) return
    // The name looked up as the workers do, so the probe and they agree on where the backend is.
    const lookup = backendLookupFor(backend.host, { refreshMs: this.config.backendRefresh * 1000 })
    const probe = new BackendProbe({
      target: backend,
      intervalMs: this.config.backendCheckInterval * 1000,
      ...(lookup !== undefined ? { lookup: lookup.lookup } : {}),
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

  /**
   * Where plaintext goes: --backend, or the built-in demo backend when none is given. A local
   * HAProxy forwards by its own configuration: --backend, when given, is only probed.
   */
  private async startBackend (): Promise<HostPort | undefined> {
    if (this.config.backend !== 'demo') return this.config.backend
    if (!this.terminator.forwardsToBackend) return undefined
    const demo = await startDemoBackend({ host: '127.0.0.1', port: 0 })
    this.closers.push(demo.close)
    this.log.info({ backend: formatHostPort(demo.address) }, 'no --backend given: serving the built-in demo backend')
    return demo.address
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
  return farmTicketSecrets(farmKeys)
}

/** The node's TLS terminator: its own workers, or a local HAProxy it companions. */
function createTerminator (config: NodeConfig, cache: PrimarySessionCache, log: Logger, hooks: TerminatorHooks): NodeTerminator {
  if (config.terminator === 'tlsfleet') return new WorkerTerminator(config, cache, log, hooks)
  return new HaproxyTerminator({
    socket: config.terminatorSocket,
    keyFile: config.terminatorKeys,
    frontends: config.terminatorFrontend,
    rotationSeconds: config.ticketRotation,
    sessionTimeoutSeconds: config.sessionTimeout,
    log
  }, hooks)
}
