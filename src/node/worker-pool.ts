import cluster, { type Worker as ClusterWorker } from 'node:cluster'
import type net from 'node:net'
import { fileURLToPath } from 'node:url'
import type { L1Request } from '../cache/l2-responder.js'
import { ListenError, PrivilegeError, WorkerStartError } from '../errors.js'
import type { MetricsJson } from '../metrics/primary-metrics.js'
import type { Logger } from '../util/logger.js'
import { guardClusterMessages } from './cluster-message-guard.js'
import { HangWatch } from './hang-watch.js'
import type { L1Stats, PrimaryToWorker, WorkerToPrimary } from './messages.js'
import { ReportRound } from './report-round.js'
import { DEFAULT_BACKOFF, RestartBackoff, type WorkerRestarts } from './restart-backoff.js'
import { START_ALLOWANCE_MS, workerStartDeadlineMs } from './start-deadline.js'
import { sendToWorker } from './worker-channel.js'
import { checkWorkerMessage, type Refusal } from './worker-message-check.js'
import { lowerWorkerPriority } from './worker-priority.js'

/** Why a worker process is gone: the node stopped it, it died on its own, or it hung and was killed (both of the last two are replaced). */
export type WorkerExit = 'stopped' | 'died' | 'hung'

export interface WorkerReport { pid: number; metrics: MetricsJson; l1: L1Stats; eventLoopUtilization: number; activeConnections: number; connectionLimit: number; handshakes: { full: number; resumed: number } }

export interface WorkerPoolOptions {
  size: number
  acceptModel: 'reuseport' | 'shared'
  /** The `init` message a new worker gets (settings and certificates of the moment). */
  init: () => PrimaryToWorker
  /** New, Get and Del from a worker's L1 (by cluster worker id), checked (worker-message-check.ts). */
  onSessionRequest: (worker: number, request: L1Request) => void
  /** A worker's message refused (malformed, out of turn): counted by reason. */
  onRefused?: (refusal: Refusal) => void
  /** How many --listen addresses each worker binds: the indexes of the listeners it may hand over. */
  listeners?: number
  /**
   * Called with the number of listening workers whenever it changes (health depends on it), and
   * at each death (the crash loop it may start is in restartStatus() by then).
   */
  onListeningChange: (listening: number) => void
  /**
   * A worker process is gone (its counters must not vanish from /metrics), and why; `final`:
   * the last report a crashing worker sent, fresher than any a round got from it.
   */
  onWorkerExit?: (pid: number, why: WorkerExit, final?: WorkerReport) => void
  /**
   * --worker-hang-timeout in ms: a listening worker silent that long (src/node/hang-watch.ts) is
   * killed and replaced; 0 or absent = never. A worker not listening within the start deadline
   * it gives (src/node/start-deadline.ts) is killed and replaced too, or fails the node's start.
   */
  hangTimeoutMs?: number
  /**
   * With --user: keep a copy of each worker's listeners and give them to its replacement, which
   * runs as that user and could not bind them itself (port below 1024, SO_REUSEPORT group of
   * root's sockets). Connections arriving meanwhile wait in the kept socket's queue.
   */
  keepListeners?: boolean
  /** --worker-nice: nice steps below the primary for every worker, replacements included. */
  niceSteps?: number
  log: Logger
}

/** A listening socket's handle as it crossed the IPC channel (an opaque libuv TCP handle). */
type ListenerHandle = object & { close?: () => void }

const START_ALLOWANCE_S = START_ALLOWANCE_MS / 1000

/**
 * Close a descriptor that came over the IPC channel, whatever Node made of it: a raw handle or
 * a server (close), or a connected socket (destroy).
 */
function closeHandle (handle: unknown): void {
  if (typeof handle !== 'object' || handle === null) return
  const h = handle as { destroy?: () => void; close?: () => void }
  if (typeof h.destroy === 'function') h.destroy()
  else if (typeof h.close === 'function') h.close()
}

/**
 * The workers of a node, as the primary manages them with node:cluster: fork N, know which are
 * listening, replace those that die (backing off when they keep dying right after start, e.g. a
 * port taken), ask them for reports, broadcast to them, and stop them gracefully.
 */
export class WorkerPool {
  readonly listening = new Set<number>()
  /** Report rounds under way, by request id. */
  private readonly rounds = new Map<number, ReportRound<WorkerReport>>()
  private nextReq = 1
  /** When dead workers' replacements are forked (src/node/restart-backoff.ts). */
  private readonly backoff: RestartBackoff
  /** Replacements waiting for their back-off: each timer and when it is due. */
  private readonly pendingRestarts = new Map<NodeJS.Timeout, number>()
  /** The crash loop under way was logged (once per loop). */
  private loopLogged = false
  /** keepListeners: each worker's listeners by --listen index, and those of dead workers. */
  private readonly kept = new Map<number, Map<number, ListenerHandle>>()
  private readonly spare: Array<Map<number, ListenerHandle>> = []
  private stopRequested = false
  private readonly hangWatch?: HangWatch
  /** Workers killed as hung, by cluster id, until their exit. */
  private readonly hung = new Set<number>()
  /** Each forked worker's start deadline, by cluster id, until it listens or exits. */
  private readonly startDeadlines = new Map<number, NodeJS.Timeout>()
  private readonly startDeadlineMs: number
  /** Once every worker of the node's start listens: from then on a stuck worker is replaced, not fatal. */
  private started = false
  /** The last report a crashing worker sent, by cluster id, until its counters are retired. */
  private readonly finalReports = new Map<number, WorkerReport>()
  /** Workers that said they were ready (once each: every `ready` is answered with a whole init). */
  private readonly readied = new Set<number>()
  /** Workers that said they cannot listen or switch user (once each), until their exit. */
  private readonly failed = new Set<number>()
  /** Workers with a refused message logged, until their exit: the next ones are only counted. */
  private readonly refusalLogged = new Set<number>()

  constructor (private readonly opts: WorkerPoolOptions) {
    if (opts.hangTimeoutMs !== undefined && opts.hangTimeoutMs > 0) this.hangWatch = new HangWatch(opts.hangTimeoutMs)
    this.startDeadlineMs = workerStartDeadlineMs(opts.hangTimeoutMs)
    // As many free restarts as workers: losing them all at once (the OOM killer, one bad
    // request reaching each) is replaced at once; the next deaths back off.
    this.backoff = new RestartBackoff({ ...DEFAULT_BACKOFF, freeRestarts: Math.max(1, opts.size) })
  }

  /** Once stop() was called: nothing is forked or given work from then on. */
  get stopping (): boolean { return this.stopRequested }

  /**
   * Fork every worker and resolve once all listen. Rejects if one exits before: with a
   * ListenError naming --listen when it could not bind, else a WorkerStartError; and with a
   * WorkerStartError when one has not listened by its start deadline (it is killed).
   */
  async start (): Promise<void> {
    // The shared-handle model: workers accept from one socket the primary holds (SCHED_NONE);
    // never round-robin, where the primary would accept every connection itself.
    if (this.opts.acceptModel === 'shared') cluster.schedulingPolicy = cluster.SCHED_NONE
    cluster.setupPrimary({
      exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)),
      serialization: 'advanced'
    })
    cluster.on('message', (worker, message: unknown, handle: unknown) => this.onRawMessage(worker, message, handle))
    cluster.on('exit', (worker, code, signal) => this.onExit(worker, code, signal))
    cluster.on('fork', (worker) => {
      const guarded = guardClusterMessages(worker, (err) => this.refuse(worker.id, { reason: 'malformed', detail: `a message to node:cluster it could not handle: ${err instanceof Error ? err.message.slice(0, 200) : String(err)}` }))
      if (!guarded) this.opts.log.debug('node:cluster\'s message handler not found: a worker\'s malformed cluster message is not caught')
      lowerWorkerPriority(worker.process.pid, this.opts.niceSteps ?? 0, this.opts.log)
      this.armStartDeadline(worker)
    })
    await Promise.all(Array.from({ length: this.opts.size }, async () => {
      const worker = cluster.fork()
      await new Promise<void>((resolve, reject) => {
        worker.once('tlsfleet:listening', resolve)
        // A worker that cannot bind says why just before it exits; any other early exit is a crash.
        worker.once('tlsfleet:listen-failed', (failure: Extract<WorkerToPrimary, { t: 'listen-failed' }>) => {
          reject(new ListenError('--listen', failure.address, { code: failure.code, message: failure.message }))
        })
        worker.once('tlsfleet:privileges-failed', (message: string) => reject(new PrivilegeError(`a worker could not switch to --user: ${message}`)))
        worker.once('tlsfleet:start-deadline', (ms: number) => {
          reject(new WorkerStartError(`a worker did not listen within ${ms / 1000} s of its start and was killed: it is stuck before it serves (loading, or building its TLS contexts); if starts are that slow here, raise --worker-hang-timeout (a start may take it plus ${START_ALLOWANCE_S} s), else run with --log-level debug to see where it stops`))
        })
        // Unless the node is stopping (a signal during the start): then leaving is what it was told.
        worker.once('exit', (code) => {
          if (this.stopRequested) resolve()
          else reject(new WorkerStartError(`a worker exited with code ${String(code)} before it listened; run with --log-level debug to see why`))
        })
      })
    }))
    this.started = true
  }

  /** Restarts for /v1/state: how many lately, whether the workers are in a crash loop, when the next replacement comes. */
  restartStatus (now = Date.now()): WorkerRestarts {
    const due = [...this.pendingRestarts.values()]
    return this.backoff.status(now, due.length > 0 ? Math.min(...due) : undefined)
  }

  /** Ask every listening worker for its counters; answers missing after `timeoutMs` are skipped. */
  async collectReports (timeoutMs = 1000, opts: { metrics?: boolean } = {}): Promise<WorkerReport[]> {
    const workers = this.workers().filter((w) => this.listening.has(w.id) && w.isConnected())
    if (workers.length === 0) return []
    const req = this.nextReq++
    const askedAt = Date.now()
    return await new Promise((resolve) => {
      const timer = setTimeout(() => round.end(), timeoutMs).unref()
      const round = new ReportRound<WorkerReport>(workers.map((w) => w.id), (reports, unanswered) => {
        clearTimeout(timer)
        this.rounds.delete(req)
        // Judged after the channels have been read: after a pause of the primary, the answers
        // waiting there come in before a round's timer is taken for a worker's silence.
        if (unanswered.length > 0 && this.hangWatch !== undefined) setImmediate(() => this.watchHangs(unanswered, askedAt))
        resolve(reports)
      })
      this.rounds.set(req, round)
      for (const worker of workers) sendToWorker(worker, { t: 'report-request', req, ...(opts.metrics === false ? { metrics: false } : {}) })
    })
  }

  /** To one worker, by cluster worker id (a worker gone meanwhile is skipped). */
  send (id: number, message: PrimaryToWorker): void {
    const worker = cluster.workers?.[id]
    if (worker !== undefined) sendToWorker(worker, message)
  }

  broadcast (message: PrimaryToWorker, except?: number): void {
    for (const worker of this.workers()) {
      if (worker.id !== except) sendToWorker(worker, message)
    }
  }

  /**
   * The node is stopping: a worker that exits from now on is not replaced (it is counted as
   * stopped), and one forked before is told to stop as soon as it is ready. Workers still
   * running keep serving until stop(). A worker that leaves on its own before this (SIGTERM to
   * it alone) is still replaced.
   */
  beginStop (): void {
    this.stopRequested = true
    // Replacements waiting for their back-off would do nothing now, but keep the primary alive up to 10 s.
    for (const timer of this.pendingRestarts.keys()) clearTimeout(timer)
    this.pendingRestarts.clear()
  }

  /**
   * Tell every worker to stop accepting and finish within `graceMs`; kill what is left 2 s
   * after (a worker that hangs). Returns the pids it had to kill.
   */
  async stop (graceMs: number): Promise<number[]> {
    this.beginStop()
    // Kept listeners first: the kernel must stop queueing connections nobody will accept.
    for (const handles of [...this.kept.values(), ...this.spare]) for (const handle of handles.values()) handle.close?.()
    this.kept.clear()
    this.spare.length = 0
    const exited = Promise.all(this.workers().map(async (worker) => {
      if (worker.isDead()) return
      await new Promise<void>((resolve) => {
        worker.once('exit', () => resolve())
        sendToWorker(worker, { t: 'shutdown', graceMs })
      })
    }))
    const killed: number[] = []
    const deadline = setTimeout(() => {
      for (const worker of this.workers()) {
        if (worker.isDead()) continue
        if (worker.process.pid !== undefined) killed.push(worker.process.pid)
        worker.process.kill('SIGKILL')
      }
    }, graceMs + 2000)
    await exited
    clearTimeout(deadline)
    return killed
  }

  /**
   * A forked worker must listen within the start deadline: one stuck before is never asked for
   * a report, so only this finds it. Killed as hung (the exit event replaces it, with the
   * back-off) or, during the node's start, the start fails (start() hears the event).
   */
  private armStartDeadline (worker: ClusterWorker): void {
    const ms = this.startDeadlineMs
    const timer = setTimeout(() => {
      this.startDeadlines.delete(worker.id)
      if (this.stopRequested || worker.isDead() || this.listening.has(worker.id)) return
      this.hung.add(worker.id)
      const fields = { worker: worker.process.pid, startDeadlineMs: ms, hangTimeoutMs: this.opts.hangTimeoutMs }
      if (this.started) this.opts.log.error(fields, 'worker did not listen within its start deadline (stuck before it serves): killed, to be replaced')
      else this.opts.log.error(fields, 'worker did not listen within its start deadline (stuck before it serves): killed; the node cannot start')
      worker.process.kill('SIGKILL')
      worker.emit('tlsfleet:start-deadline', ms)
    }, ms)
    // Never what keeps the primary alive: it only acts on a worker, which a stop kills anyway.
    timer.unref()
    this.startDeadlines.set(worker.id, timer)
  }

  private clearStartDeadline (id: number): void {
    clearTimeout(this.startDeadlines.get(id))
    this.startDeadlines.delete(id)
  }

  /** A round ended without some workers' answers: kill those now hung (the exit event replaces them). */
  private watchHangs (unanswered: number[], askedAt: number): void {
    if (this.hangWatch === undefined || this.stopRequested) return
    for (const { worker: id, silentMs } of this.hangWatch.roundEnded(unanswered, askedAt, Date.now())) {
      const worker = cluster.workers?.[id]
      if (worker === undefined) continue
      this.hung.add(id)
      this.opts.log.error({ worker: worker.process.pid, silentMs, hangTimeoutMs: this.opts.hangTimeoutMs }, 'worker hung (no answer to the primary): killed, to be replaced')
      worker.process.kill('SIGKILL')
    }
  }

  /**
   * Retire a dead worker's counters once its channel has been read to the end: the process's
   * exit can be seen before the last messages it wrote (a crashing worker's final report).
   */
  private retireOnceRead (worker: ClusterWorker, why: WorkerExit): void {
    let done = false
    const retire = (): void => {
      if (done) return
      done = true
      clearTimeout(fallback)
      const final = this.finalReports.get(worker.id)
      this.finalReports.delete(worker.id)
      if (worker.process.pid !== undefined) this.opts.onWorkerExit?.(worker.process.pid, why, final)
      // After onWorkerExit has retired its counters: a report it sent in a round under way is dropped.
      for (const round of [...this.rounds.values()]) round.exited(worker.id)
    }
    // The channel closes right after the exit; never wait on it for long.
    const fallback = setTimeout(retire, 2000)
    fallback.unref()
    if (worker.isConnected()) worker.once('disconnect', retire)
    else retire()
  }

  private workers (): ClusterWorker[] {
    return Object.values(cluster.workers ?? {}).filter((w): w is ClusterWorker => w !== undefined)
  }

  /**
   * Every message a worker sends is checked before use (worker-message-check.ts): a worker
   * parses what clients send, and one gone wrong must not take the primary, and the node, with it.
   */
  private onRawMessage (worker: ClusterWorker, raw: unknown, handle: unknown): void {
    const checked = checkWorkerMessage(raw, Math.floor(Date.now() / 1000))
    // A descriptor comes with `listener` only: any other was one more open in the primary, for good.
    if (checked.ok && typeof handle === 'object' && handle !== null && checked.message.t !== 'listener') return this.refuse(worker.id, { reason: 'malformed', detail: `a descriptor attached to a ${checked.message.t} message` }, handle)
    if ('refused' in checked) this.refuse(worker.id, checked.refused, handle)
    if (checked.ok) this.onMessage(worker, checked.message, handle)
  }

  /**
   * A worker's message refused: counted, the first of each worker logged (a worker in a loop
   * must not flood the log), and a handle it came with closed (a descriptor the primary keeps
   * is one it can run out of).
   */
  refuse (id: number, refusal: Refusal, handle?: unknown): void {
    this.opts.onRefused?.(refusal)
    closeHandle(handle)
    if (this.refusalLogged.has(id)) return
    this.refusalLogged.add(id)
    const worker = cluster.workers?.[id]
    this.opts.log.error({ worker: worker?.process.pid, reason: refusal.reason, problem: refusal.detail }, 'a worker sent the primary a message it cannot use: refused (a bug in the worker, or the worker is compromised); counted in tlsfleet_worker_messages_refused_total, later ones of this worker only counted')
  }

  /**
   * A worker that cannot bind or switch user says so once, before it listens, and exits: any
   * other is refused (true), not logged (each was an error line: a worker in a loop filled the log).
   */
  private saidFailure (worker: ClusterWorker, t: string): boolean {
    if (!this.listening.has(worker.id) && !this.failed.has(worker.id)) {
      this.failed.add(worker.id)
      return false
    }
    this.refuse(worker.id, { reason: 'out_of_turn', detail: `${t}: said twice, or after listening` })
    return true
  }

  private onMessage (worker: ClusterWorker, message: WorkerToPrimary, handle: unknown): void {
    switch (message.t) {
      case 'ready': {
        if (this.readied.has(worker.id)) return this.refuse(worker.id, { reason: 'out_of_turn', detail: 'ready: said twice' })
        this.readied.add(worker.id)
        // Forked before a stop: a shutdown sent earlier may have come before it was listening.
        if (this.stopRequested) {
          sendToWorker(worker, { t: 'shutdown', graceMs: 0 })
          break
        }
        const inherited = this.opts.keepListeners === true ? this.spare.pop() : undefined
        if (inherited !== undefined) {
          this.kept.set(worker.id, inherited)
          // A raw libuv TCP handle: Node sends it as a file descriptor ('net.Native'), though the
          // types only name Socket and Server.
          for (const [index, kept] of inherited) sendToWorker(worker, { t: 'listener', index }, kept as unknown as net.Server)
        }
        sendToWorker(worker, this.opts.init())
        break
      }
      case 'listener': {
        // Only with --user, once per --listen index, before the worker listens: a replacement
        // is given these, so a worker must not plant other sockets there later.
        const handles = this.kept.get(worker.id)
        if (this.opts.keepListeners !== true || typeof handle !== 'object' || handle === null || this.listening.has(worker.id) ||
            message.index >= (this.opts.listeners ?? Infinity) || handles?.has(message.index) === true) {
          return this.refuse(worker.id, { reason: 'out_of_turn', detail: `listener ${message.index}: not a listener this worker hands over now` }, handle)
        }
        if (handles === undefined) this.kept.set(worker.id, new Map([[message.index, handle]]))
        else handles.set(message.index, handle)
        break
      }
      case 'privileges-failed':
        if (this.saidFailure(worker, message.t)) return
        this.opts.log.error({ worker: worker.process.pid, reason: message.message }, 'worker could not switch to --user; it exits')
        worker.emit('tlsfleet:privileges-failed', message.message)
        break
      case 'listening':
        this.clearStartDeadline(worker.id)
        this.listening.add(worker.id)
        this.opts.onListeningChange(this.listening.size)
        worker.emit('tlsfleet:listening')
        break
      case 'listen-failed':
        if (this.saidFailure(worker, message.t)) return
        this.opts.log.error({ worker: worker.process.pid, address: message.address, code: message.code }, 'worker cannot listen')
        worker.emit('tlsfleet:listen-failed', message)
        break
      case 'session-new':
      case 'session-get':
      case 'session-del':
      case 'session-batch':
        this.opts.onSessionRequest(worker.id, message)
        break
      case 'report': {
        this.hangWatch?.answered(worker.id, Date.now())
        // Filed under its real pid: one worker's report must not replace another's counters.
        const report: WorkerReport = { pid: worker.process.pid ?? 0, handshakes: message.handshakes, metrics: message.metrics as MetricsJson, l1: message.l1, eventLoopUtilization: message.eventLoopUtilization, activeConnections: message.activeConnections, connectionLimit: message.connectionLimit }
        if (message.final === true) this.finalReports.set(worker.id, report)
        else this.rounds.get(message.req)?.answered(worker.id, report)
        break
      }
    }
  }

  private onExit (worker: ClusterWorker, code: number | null, signal: string | null): void {
    const handles = this.kept.get(worker.id)
    this.kept.delete(worker.id)
    if (handles !== undefined && !this.stopRequested) this.spare.push(handles)
    this.listening.delete(worker.id)
    this.hangWatch?.exited(worker.id)
    this.clearStartDeadline(worker.id)
    this.readied.delete(worker.id)
    this.failed.delete(worker.id)
    this.refusalLogged.delete(worker.id)
    const why: WorkerExit = this.hung.delete(worker.id) ? 'hung' : this.stopRequested ? 'stopped' : 'died'
    this.retireOnceRead(worker, why)
    if (this.stopRequested) {
      this.opts.onListeningChange(this.listening.size)
      return
    }
    // Replace it; back off when workers keep dying right after start (bad port, crash loop).
    const now = Date.now()
    const delay = this.backoff.died(now)
    const crashLoop = this.backoff.inCrashLoop(now)
    // Told after the death is counted, so a health reason read from restartStatus() has it.
    this.opts.onListeningChange(this.listening.size)
    this.opts.log.warn({ worker: worker.process.pid, code, signal, restartInMs: delay, ...(crashLoop ? { crashLoop } : {}) }, why === 'hung' ? 'hung worker gone; replacing it' : 'worker died; replacing it')
    if (crashLoop && !this.loopLogged) {
      const { recent, windowSeconds } = this.backoff.status(now)
      this.opts.log.error({ recentRestarts: recent, windowSeconds, restartInMs: delay }, `workers keep dying (a crash loop): replacements now wait, up to ${DEFAULT_BACKOFF.capMs / 1000} s, until no worker has died for ${windowSeconds} s; the lines above say why they die`)
    }
    this.loopLogged = crashLoop
    const timer = setTimeout(() => {
      this.pendingRestarts.delete(timer)
      if (!this.stopRequested) cluster.fork()
    }, delay)
    this.pendingRestarts.set(timer, now + delay)
  }
}
