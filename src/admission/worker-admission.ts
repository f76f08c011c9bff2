import type net from 'node:net'
import type { WorkerMetrics } from '../metrics/worker-metrics.js'
import { BurstLog, BurstLogs } from '../util/burst-log.js'
import type { Logger } from '../util/logger.js'
import { connectionCap, fdConnectionCap, type ConnectionCap } from './connection-cap.js'
import { countOpenFds, probeFd, readFdLimit } from './fd-limit.js'

/** How often the descriptor limit is read again and the probe run. */
const FD_CHECK_INTERVAL_MS = 1000
/** A burst of refusals ends after this long without one. */
const QUIET_MS = 5000

export interface WorkerAdmissionOptions {
  /** This worker's share of --max-connections; 0 = none. */
  share: number
  /** --max-connections as given, for the log lines. */
  maxConnections: number
  /** --listen addresses: with several, their servers share the cap. */
  listeners: number
  metrics: WorkerMetrics
  log: Logger
  /** Tests replace the /proc readers. */
  fdLimit?: () => number | undefined
  openFds?: () => number | undefined
  probe?: () => 'ok' | 'EMFILE' | 'ENFILE'
}

/**
 * Admission in a worker: how many connections it holds at once (its share of
 * --max-connections, and what its file-descriptor limit leaves room for), refused at the door
 * by Node itself (`server.maxConnections`: the accepted socket is closed before any JavaScript
 * object is made for it, and `drop` emitted, which is counted here), and the watch on
 * descriptors: libuv closes connections it cannot accept (EMFILE) without telling Node, so a
 * probe once a second says when that happens and for how long.
 */
export class WorkerAdmission {
  private cap: ConnectionCap
  private fdLimit: number | undefined
  private fdsAtStart = 0
  private servers: net.Server[] = []
  private timer: NodeJS.Timeout | undefined
  private exhaustedSince: number | undefined
  /** One burst log per bound: a burst of one must not hide the start of another's. */
  private readonly refusals: BurstLogs<string | undefined>
  private readonly untrustedHeaders: BurstLog<string | undefined>
  private readonly readLimit: () => number | undefined
  private readonly openFds: () => number | undefined
  private readonly probe: () => 'ok' | 'EMFILE' | 'ENFILE'

  constructor (private readonly opts: WorkerAdmissionOptions) {
    this.readLimit = opts.fdLimit ?? readFdLimit
    this.openFds = opts.openFds ?? countOpenFds
    this.probe = opts.probe ?? probeFd
    this.fdLimit = this.readLimit()
    this.cap = connectionCap(opts.share, Number.POSITIVE_INFINITY)
    this.refusals = new BurstLogs({
      quietMs: QUIET_MS,
      onStart: (reason, first) => this.refusalsStarted(reason, first),
      onEnd: (reason, events, seconds) => opts.log.info({ reason, refused: events, seconds: Math.round(seconds) }, 'connections admitted again after a burst of refusals')
    })
    this.untrustedHeaders = new BurstLog({
      quietMs: QUIET_MS,
      onStart: (peer) => opts.log.warn({ peer }, 'PROXY header from a peer outside --proxy-from, or (--proxy-protocol-in v1|v2) any connection from one: connection closed (a client forging its address or connecting past the balancer, or a balancer missing from --proxy-from)'),
      onEnd: (events, seconds) => opts.log.info({ closed: events, seconds: Math.round(seconds) }, 'PROXY headers from peers outside --proxy-from: burst over')
    })
  }

  /** Connections this worker holds at most (Infinity: no bound known). */
  get limit (): number { return this.cap.limit }

  /**
   * Once the servers listen: count what is open (the runtime, IPC, listeners), derive the cap,
   * put it on every server, count their drops, and start the descriptor watch.
   */
  attach (servers: net.Server[]): void {
    this.servers = servers
    this.fdsAtStart = this.openFds() ?? 0
    this.apply(connectionCap(this.opts.share, fdConnectionCap(this.fdLimit, this.fdsAtStart)))
    for (const server of servers) {
      server.on('drop', (data?: { remoteAddress?: string }) => this.refused(this.cap.bound, data?.remoteAddress))
    }
    if (this.cap.limit === 0) this.opts.log.error({ fdLimit: this.fdLimit, fdsOpen: this.fdsAtStart }, 'the file-descriptor limit leaves no room for a connection: every connection is refused; raise LimitNOFILE / ulimit -n')
    this.timer = setInterval(() => this.checkDescriptors(), FD_CHECK_INTERVAL_MS)
    this.timer.unref()
  }

  /**
   * The connection callback for the servers. With one listener Node's own bound is exact; with
   * several, each server counts only its own connections, so the worker's total is checked here.
   */
  handler (handle: (socket: net.Socket) => void, open: () => number): (socket: net.Socket) => void {
    if (this.opts.listeners <= 1) return handle
    return (socket) => {
      if (open() < this.cap.limit) {
        handle(socket)
        return
      }
      socket.destroy()
      this.refused(this.cap.bound, undefined)
    }
  }

  /** A connection refused by another bound (per source): counted and logged per burst too. */
  refused (reason: string, address: string | undefined): void {
    this.opts.metrics.connectionRefused(reason)
    this.refusals.note(reason, address)
  }

  /** The first refusal of a burst: which bound, and what to do about it. */
  private refusalsStarted (reason: string, address: string | undefined): void {
    const log = this.opts.log
    if (reason === 'per_source') {
      log.warn({ reason, address }, 'refusing new connections from a source that holds its share of --max-handshakes-per-source (handshakes under way from one address, per worker)')
    } else if (reason === 'fd_limit') {
      log.warn({ reason, limit: this.cap.limit, fdLimit: this.fdLimit, address }, 'refusing new connections: this worker holds what its file-descriptor limit allows (two per connection); raise LimitNOFILE / ulimit -n')
    } else {
      log.warn({ reason, limit: this.cap.limit, maxConnections: this.opts.maxConnections, address }, 'refusing new connections: this worker holds its share of --max-connections')
    }
  }

  /** A PROXY header from outside --proxy-from (the terminator counts it with the PROXY errors). */
  untrusted (peer: string | undefined): void {
    this.untrustedHeaders.note(peer)
  }

  stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.refusals.flush()
    this.untrustedHeaders.flush()
  }

  /** Once a second: the limit read again (prlimit can change it), and the EMFILE probe. */
  checkDescriptors (now = Date.now()): void {
    const limit = this.readLimit()
    // Unreadable while exhausted (reading needs a descriptor too): keep the last value.
    if (limit !== undefined && limit !== this.fdLimit) {
      const previous = this.fdLimit
      this.fdLimit = limit
      this.apply(connectionCap(this.opts.share, fdConnectionCap(limit, this.fdsAtStart)))
      this.opts.log.warn({ fdLimit: limit, previous, limit: this.cap.limit }, 'file-descriptor limit changed: connection cap set again')
    }
    const probe = this.probe()
    if (probe !== 'ok') {
      if (this.exhaustedSince !== undefined) return
      this.exhaustedSince = now
      this.opts.metrics.fdExhausted()
      this.opts.log.error({ code: probe, fdLimit: this.fdLimit, connections: this.opts.metrics.activeConnections, limit: this.cap.limit },
        'file descriptors exhausted: new connections are accepted and closed unanswered (libuv, no error reaches the node) until descriptors free up')
    } else if (this.exhaustedSince !== undefined) {
      this.opts.log.warn({ seconds: Math.round((now - this.exhaustedSince) / 1000), fdLimit: this.fdLimit }, 'file descriptors available again: accepting connections')
      this.exhaustedSince = undefined
    }
  }

  private apply (cap: ConnectionCap): void {
    this.cap = cap
    this.opts.metrics.connectionLimit = Number.isFinite(cap.limit) ? cap.limit : 0
    for (const server of this.servers) server.maxConnections = cap.limit
  }
}
