import cluster from 'node:cluster'
import { performance } from 'node:perf_hooks'
import net from 'node:net'
import { WorkerAdmission } from '../admission/worker-admission.js'
import { ExpirySweep } from '../cache/expiry-sweep.js'
import { WorkerSessionCache, type L2Channel } from '../cache/worker-session-cache.js'
import type { SessionEntry } from '../cache/session-store.js'
import { formatHostPort } from '../config/host-port.js'
import { WorkerMetrics } from '../metrics/worker-metrics.js'
import { TlsTerminator } from '../tls/terminator.js'
import { createLogger, type Logger } from '../util/logger.js'
import type { SessionUpdate } from '../cache/l2-responder.js'
import { isPrimaryMessage, type PrimaryToWorker, type WorkerToPrimary } from './messages.js'
import { dropPrivileges } from './privileges.js'
import type { WorkerSettings } from './worker-settings.js'

/**
 * A worker ("son"): accepts connections on its own listeners, terminates TLS, forwards to the
 * backend. It owns L1; the primary owns L2. It takes orders only from the primary; when the
 * primary is gone it releases the port at once and leaves shortly after, so no orphan keeps it.
 */
function send (message: WorkerToPrimary, sent?: () => void): void {
  if (process.connected && process.send !== undefined) process.send(message, undefined, {}, sent)
  else sent?.()
}

/**
 * How long a worker whose primary died lets its open connections go on before it cuts them and
 * exits: brief, as nothing supervises it any more (--grace-period may be minutes).
 */
const PRIMARY_GONE_GRACE_MS = 2000

/** How long a crashing worker waits for its last report to leave before it exits anyway. */
const LAST_REPORT_MS = 1000

/**
 * L1's channel to L2 over cluster IPC. New and Del are fire-and-forget. The first of an
 * event-loop turn leaves at once (as before batching: a new session goes out before the
 * handshake's last flight, ahead of a client that reconnects elsewhere at once); those that
 * follow in the same turn leave together at its end (setImmediate: no timer, no wait beyond the
 * turn). Under load a turn completes several handshakes, and each message costs both processes
 * a system call and the primary a wake-up on a core the workers share.
 */
class IpcL2Channel implements L2Channel {
  private nextReq = 1
  private readonly pending = new Map<number, (entry: SessionEntry | null) => void>()
  private queued: SessionUpdate[] = []
  private inTurn = false

  sendNew (id: Buffer, entry: SessionEntry): void { this.queue({ t: 'session-new', id, der: entry.der, createdAt: entry.createdAt }) }
  sendDel (id: Buffer): void { this.queue({ t: 'session-del', id }) }

  private queue (update: SessionUpdate): void {
    if (this.inTurn) {
      this.queued.push(update)
      return
    }
    this.inTurn = true
    setImmediate(() => {
      this.inTurn = false
      this.flush()
    })
    send(update)
  }

  /** Sends what is queued: one update as itself, several as one batch. */
  flush (): void {
    const updates = this.queued
    if (updates.length === 0) return
    this.queued = []
    send(updates.length === 1 ? updates[0] as SessionUpdate : { t: 'session-batch', updates })
  }

  async requestGet (id: Buffer): Promise<SessionEntry | null> {
    if (!process.connected) return null
    const req = this.nextReq++
    // A Del still queued must reach L2 before this Get, or L2 could hand back what it drops.
    this.flush()
    return await new Promise((resolve) => {
      this.pending.set(req, resolve)
      // The cache's own deadline decides the handshake; this only bounds the map.
      setTimeout(() => { if (this.pending.delete(req)) resolve(null) }, 5000).unref()
      send({ t: 'session-get', req, id })
    })
  }

  reply (req: number, der: Buffer | null, createdAt: number): void {
    const resolve = this.pending.get(req)
    if (resolve === undefined) return
    this.pending.delete(req)
    resolve(der === null ? null : { der, createdAt })
  }
}

class Worker {
  private readonly metrics = new WorkerMetrics()
  private readonly channel = new IpcL2Channel()
  private readonly cache: WorkerSessionCache
  private readonly expirySweep: ExpirySweep
  private readonly terminator: TlsTerminator
  private readonly admission: WorkerAdmission
  private readonly servers: net.Server[] = []
  private readonly log: Logger
  private elu = performance.eventLoopUtilization()
  private stopping = false

  get gracePeriodMs (): number { return this.settings.gracePeriodMs }

  constructor (private readonly settings: WorkerSettings, init: Extract<PrimaryToWorker, { t: 'init' }>) {
    this.log = createLogger({ level: settings.logLevel, format: settings.logFormat, name: 'worker' })
    this.cache = new WorkerSessionCache({
      l1Size: settings.l1Size,
      lifetimeSeconds: settings.sessionTimeout,
      getTimeoutMs: settings.cacheGetTimeoutMs
    }, this.channel, this.metrics)
    // L1 keeps expired sessions as L2 does; the sweep ends with the process (its timer is unref'd).
    this.expirySweep = new ExpirySweep(this.cache.l1)
    this.admission = new WorkerAdmission({
      share: settings.connectionShare,
      maxConnections: settings.maxConnections,
      listeners: settings.listen.length,
      metrics: this.metrics,
      log: this.log
    })
    this.terminator = new TlsTerminator(settings, init.material, this.cache, this.metrics, this.log, this.admission)
    this.terminator.setStaples(init.staples)
  }

  /**
   * Bind every --listen address, or take over the listeners a dead worker left with the
   * primary (`adopted`, by index: with --user, where a worker forked after the switch could
   * not bind a port below 1024 nor join the SO_REUSEPORT group root's sockets form).
   */
  async listen (adopted: ReadonlyMap<number, object>): Promise<void> {
    const reusePort = this.settings.acceptModel === 'reuseport'
    const onConnection = this.admission.handler((socket) => this.terminator.handle(socket), () => this.terminator.connections)
    for (const [index, address] of this.settings.listen.entries()) {
      const server = net.createServer({ allowHalfOpen: true, noDelay: true, ...this.keepalive() }, onConnection)
      const handle = adopted.get(index)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        const done = (): void => {
          server.removeListener('error', reject)
          resolve()
        }
        // exclusive: with reuseport each worker binds its own socket (SO_REUSEPORT) and the
        // kernel spreads connections; without it, cluster shares the primary's handle.
        if (handle !== undefined) server.listen(handle, 1024, done)
        else server.listen({ host: address.host, port: address.port, reusePort, exclusive: reusePort, backlog: 1024 }, done)
      })
      this.servers.push(server)
      this.log.debug({ listen: formatHostPort(address), adopted: handle !== undefined }, 'listening')
    }
    this.admission.attach(this.servers)
    this.log.debug({ connections: this.admission.limit }, 'connection cap')
  }

  /**
   * --tcp-keepalive on the client sockets: Node sets it on each accepted handle before the
   * socket object exists (libuv's four setsockopt calls: on, idle, interval, count; nothing when off).
   */
  private keepalive (): net.ServerOpts {
    const ms = this.settings.tcpKeepaliveMs
    return ms > 0 ? { keepAlive: true, keepAliveInitialDelay: ms } : {}
  }

  /**
   * --user: hand the primary a copy of each listener bound here (for a replacement worker),
   * then stop being root. Throws when the switch fails: this worker must not serve.
   */
  switchUser (adopted: ReadonlyMap<number, object>): void {
    const runAs = this.settings.runAs
    if (runAs === undefined || process.getuid?.() === runAs.uid) return
    if (adopted.size === 0) {
      this.servers.forEach((server, index) => {
        // The listener's handle (the socket): Node passes it to the primary as a file descriptor.
        const handle = (server as unknown as { _handle: net.Socket | null })._handle
        if (handle !== null && process.connected) process.send?.({ t: 'listener', index } satisfies WorkerToPrimary, handle)
      })
    }
    dropPrivileges(runAs)
    this.log.debug({ user: runAs.user, uid: runAs.uid, gid: runAs.gid }, 'running as --user')
  }

  onMessage (message: PrimaryToWorker): void {
    switch (message.t) {
      case 'session-reply':
        this.channel.reply(message.req, message.der, message.createdAt)
        break
      case 'session-del':
        this.cache.forget(message.id)
        break
      case 'tls-material':
        // Together, so that no handshake sees a new certificate without its staple.
        this.terminator.setMaterial(message.material)
        if (message.staples !== undefined) this.terminator.setStaples(message.staples)
        this.log.info({ certificates: message.material.certificates.length }, 'certificates reloaded')
        break
      case 'ocsp-staples':
        this.terminator.setStaples(message.staples)
        break
      case 'ticket-keys':
        // Checked there: the channel is the primary's, but a set is refused whole if malformed.
        this.terminator.setTicketKeys(message.keys)
        break
      case 'report-request':
        void this.report(message.req, message.metrics !== false)
        break
      case 'shutdown':
        this.shutdown(message.graceMs)
        break
      case 'init':
      case 'listener':
        break
    }
  }

  private async report (req: number, withMetrics: boolean, final?: { sent: () => void }): Promise<void> {
    const elu = performance.eventLoopUtilization(this.elu)
    this.elu = performance.eventLoopUtilization()
    send({
      t: 'report',
      ...(final !== undefined ? { final: true } : {}),
      req,
      pid: process.pid,
      handshakes: this.metrics.handshakeTotals(),
      metrics: withMetrics ? await this.metrics.registry.getMetricsAsJSON() : [],
      l1: { entries: this.cache.l1.size, hits: this.cache.l1.hits, misses: this.cache.l1.misses, bytes: this.cache.l1.bytes },
      eventLoopUtilization: elu.utilization,
      activeConnections: this.terminator.connections,
      connectionLimit: Number.isFinite(this.admission.limit) ? this.admission.limit : 0
    }, final?.sent)
  }

  /**
   * An uncaught exception (or unhandled rejection): the state is unknown, so the worker leaves
   * (the primary replaces it), but first it says why in the node's log, as JSON like the rest
   * (Node's default is a stack trace on stderr), stops accepting, and sends what it counted
   * since the last scrape, so /metrics and the totals keep it. Exit status 1, as Node's own.
   */
  crash (err: unknown): void {
    this.stopping = true
    this.log.fatal({ err }, 'worker crashed (uncaught exception): it exits and is replaced')
    for (const server of this.servers) server.close()
    const exit = (): never => process.exit(1)
    setTimeout(exit, LAST_REPORT_MS)
    this.report(0, true, { sent: exit }).catch(exit)
  }

  /**
   * The primary is gone: stop as below, with a brief grace. A stop already under way (SIGTERM,
   * a crash) keeps its own deadline: it is bounded by the worker's own timer either way.
   */
  primaryGone (): void {
    if (this.stopping) {
      this.log.warn('the primary is gone: the stop under way goes on')
      return
    }
    this.log.warn({ gracePeriodMs: PRIMARY_GONE_GRACE_MS }, `the primary is gone: stopped accepting; open connections get ${PRIMARY_GONE_GRACE_MS / 1000} s`)
    this.shutdown(PRIMARY_GONE_GRACE_MS)
  }

  /** Stop accepting, let open connections finish within the grace period, then exit. */
  shutdown (graceMs: number): void {
    if (this.stopping) return
    this.stopping = true
    this.admission.stop()
    for (const server of this.servers) server.close()
    const exitWhenIdle = (): void => {
      if (this.terminator.connections > 0) return
      process.exit(0)
    }
    const timer = setTimeout(() => {
      const cut = this.terminator.connections
      // Said before the cut: how many clients the grace period did not let finish.
      if (cut > 0) this.log.warn({ connections: cut, gracePeriodMs: graceMs }, 'grace period over: closing the connections still open')
      this.terminator.destroyAll()
      process.exit(0)
    }, graceMs)
    timer.unref()
    setInterval(exitWhenIdle, 100).unref()
    exitWhenIdle()
  }
}

export function runWorker (): void {
  let worker: Worker | undefined
  // Ctrl-C, a terminal hangup or `kill -HUP -<pgid>` reach the whole process group: only the
  // primary decides when workers stop, and a reload comes from it as a message (SIGHUP's
  // default action would kill the worker and its connections).
  process.on('SIGINT', () => {})
  process.on('SIGHUP', () => {})
  process.on('SIGTERM', () => { if (worker === undefined) process.exit(0); else worker.shutdown(worker.gracePeriodMs) })
  // Node's cluster registers its own 'disconnect' listener in every worker, before this code
  // runs, and it calls process.exit(0) at once unless the worker "exited after disconnect":
  // every open connection was cut the moment the primary died. Marked so, cluster's listener
  // leaves the decision to ours below (the flag is read nowhere else in a worker; the primary
  // keeps its own copy, which this does not touch). Removing that listener instead would mean
  // telling it apart from others by its source, which no API offers.
  if (cluster.worker !== undefined) cluster.worker.exitedAfterDisconnect = true
  process.on('disconnect', () => {
    // The primary is gone (killed, crashed, out of memory): nobody will stop or replace this
    // worker now. Release the port at once (a node started again must bind it), give open
    // connections a brief time, then leave: no orphan serves on without its primary.
    if (worker !== undefined) worker.primaryGone()
    else process.exit(0)
  })
  // Listeners a dead worker left with the primary, sent before `init` (only with --user).
  const adopted = new Map<number, object>()
  process.on('message', (message: unknown, handle: unknown) => {
    if (!isPrimaryMessage(message)) return
    if (message.t === 'listener' && worker === undefined && typeof handle === 'object' && handle !== null) {
      adopted.set(message.index, handle)
      return
    }
    // Stopped before it was given anything to serve (SIGTERM during the node's start).
    if (message.t === 'shutdown' && worker === undefined) process.exit(0)
    if (message.t === 'init') {
      if (worker !== undefined) return
      const started = new Worker(message.settings, message)
      worker = started
      // Once: an exception while crashing gets Node's default (stack on stderr, exit).
      process.once('uncaughtException', (err) => started.crash(err))
      started.listen(adopted).then(() => {
        try {
          started.switchUser(adopted)
        } catch (err) {
          // Never serve as root when --user was asked for: say why, and leave.
          const failed: WorkerToPrimary = { t: 'privileges-failed', message: (err as Error).message }
          if (process.connected && process.send !== undefined) process.send(failed, undefined, {}, () => process.exit(3))
          else process.exit(3)
          return
        }
        send({ t: 'listening' })
      }, (err: Error & { address?: string; port?: number; code?: string }) => {
        // The primary turns this into one line naming --listen; the worker just leaves.
        const address = err.address !== undefined ? formatHostPort({ host: err.address, port: err.port ?? 0 }) : 'a --listen address'
        const failed: WorkerToPrimary = { t: 'listen-failed', address, code: err.code ?? '', message: err.message }
        if (process.connected && process.send !== undefined) process.send(failed, undefined, {}, () => process.exit(3))
        else process.exit(3)
      })
      return
    }
    worker?.onMessage(message)
  })
  send({ t: 'ready' })
}
