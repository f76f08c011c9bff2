import type { CertificatesBody } from '../admin/schemas.js'
import type { LoadSample } from '../agent/load-sampler.js'
import { TerminatorError, TlsfleetError } from '../errors.js'
import type { NodeTerminator, TerminatorHealth, TerminatorHooks, TerminatorMetrics, TerminatorStart, TerminatorStatus } from '../node/terminator-part.js'
import type { CertificateBundle } from '../tls/certificates.js'
import { TicketKeySchedule } from '../tls/ticket-keys.js'
import type { Logger } from '../util/logger.js'
import { connectionLost, HaproxyRuntimeApi, RuntimeSocketError } from './runtime-api.js'
import { haproxyBusyRatio, haproxyProcess, type HaproxyInfo } from './show-info.js'
import type { StatRow } from './stats.js'
import { addCounters, HaproxyTerminatorMetrics, MonotonicTotal, type HaproxyFigures } from './terminator-metrics.js'
import { checkLocalHaproxy, frontendRows, otherRingsWarning, type LocalHaproxyFindings, type LocalHaproxySetup } from './terminator-setup.js'
import { TicketKeyPusher, type RingCheck } from './ticket-key-pusher.js'

export interface HaproxyTerminatorOptions extends LocalHaproxySetup {
  rotationSeconds: number
  /** Ticket lifetime for the schedule; HAProxy's ring bounds it anyway (previous key only). */
  sessionTimeoutSeconds: number
  /** How often the local HAProxy is read (default 1000 ms). */
  intervalMs?: number
  /** Runtime API deadline per command (default 2000 ms). */
  timeoutMs?: number
  log: Logger
  now?: () => number
}

/** Frontend statuses that still serve (FULL: at its maxconn, new connections wait in the queue). */
const SERVING_FRONTEND = new Set(['OPEN', 'FULL'])

/** The Runtime API gave no whole reply within its deadline (a wedged HAProxy). */
function timedOut (err: unknown): boolean { return err instanceof RuntimeSocketError && err.timeoutMs !== undefined }

/**
 * `--terminator haproxy`: a local HAProxy terminates TLS and this node is its companion. Once a
 * second it reads `show info` and `show stat` through --terminator-socket and keeps the ticket
 * key ring of --terminator-keys equal to the farm's (TicketKeyPusher), and at each rotation
 * boundary it pushes the next key at once. The node is up only while the local HAProxy answers,
 * is set up for it (checked once per HAProxy process), is not stopping, has its frontends open
 * and holds the farm's ring: a restarted HAProxy is repaired before the agent says up again.
 * Load for the weight: HAProxy's busy share and TLS session rate. It never starts, stops or
 * reloads HAProxy.
 */
export class HaproxyTerminator implements NodeTerminator {
  readonly kind = 'haproxy'
  readonly workersConfigured = 0
  readonly metricsInProcess = true
  readonly forwardsToBackend = false
  readonly api: HaproxyRuntimeApi
  private readonly metricsPart: HaproxyTerminatorMetrics
  private readonly figures: HaproxyFigures = {
    serving: false,
    handshakesFull: new MonotonicTotal(),
    handshakesResumed: new MonotonicTotal(),
    cacheLookups: new MonotonicTotal(),
    cacheMisses: new MonotonicTotal()
  }

  private pusher?: TicketKeyPusher
  /** The ticket secret HAProxy's ring derives from (the sending farm secret's), and the one it replaced while still accepted. */
  private ticketSecret?: { secret: Buffer; schedule: TicketKeySchedule; outgoing?: { secret: Buffer; schedule: TicketKeySchedule } }
  private latest?: LoadSample
  private health: TerminatorHealth = { serving: false, reason: 'local haproxy not read yet' }
  private info?: HaproxyInfo
  private frontends: Array<{ name: string; status: string }> = []
  private ring?: RingCheck
  private pushes = { rotation: 0, repair: 0, lastAt: undefined as Date | undefined }
  /** The HAProxy process whose setup was checked; a new one is checked again. */
  private checkedProcess?: string
  /** The HAProxy process last seen answering, to count restarts. */
  private seenProcess?: string
  private setupProblem?: string
  /** Why the key file cannot be kept equal to the ring (a reload would start from a stale one). */
  private keyFileProblem?: string
  /** Rings of other key files in the local HAProxy (its last checked process), as a warning. */
  private otherRings?: string
  /** The HAProxy process whose findings were logged (a check cut short is made again). */
  private warnedProcess?: string
  /** The setup problem in a few words, for the agent line. */
  private setupBrief?: string
  private reachable = false
  private running: Promise<void> = Promise.resolve()
  private pollTimer?: NodeJS.Timeout
  private rotationTimer?: NodeJS.Timeout
  private stopped = false

  constructor (private readonly opts: HaproxyTerminatorOptions, private readonly hooks: TerminatorHooks) {
    this.api = new HaproxyRuntimeApi(opts.socket, { timeoutMs: opts.timeoutMs ?? 2000 })
    this.metricsPart = new HaproxyTerminatorMetrics(() => this.figures)
  }

  /**
   * Refuse a local HAProxy that answers but is not set up for this (TerminatorError). One that
   * does not answer yet is no refusal: HAProxy may start after tlsfleet; the node says down
   * until it answers, and checks it then. Nor is one that goes away during the check (a restart
   * or reload at that moment): it is checked again when it answers.
   */
  async prepare (): Promise<void> {
    let info: HaproxyInfo
    try {
      info = await this.api.showInfo()
    } catch (err) {
      this.opts.log.warn({ err, socket: this.opts.socket }, 'the local haproxy does not answer yet; the agent says down until it does')
      return
    }
    let findings: LocalHaproxyFindings
    try {
      findings = await checkLocalHaproxy(this.api, this.opts)
    } catch (err) {
      if (!connectionLost(err) && !timedOut(err)) throw err
      this.opts.log.warn({ err, socket: this.opts.socket }, 'the local haproxy went away while its setup was checked; the agent says down until it answers and passes the check')
      return
    }
    this.noteFindings(findings, haproxyProcess(info))
    this.checkedProcess = this.seenProcess = haproxyProcess(info)
  }

  certificates (): CertificateBundle[] { return [] }

  async start (context: TerminatorStart): Promise<void> {
    const [secret] = context.ticketSecrets
    if (secret === undefined) throw new Error('the haproxy terminator needs the farm ticket secret')
    this.ticketSecret = { secret, schedule: this.scheduleOf(secret) }
    this.pusher = new TicketKeyPusher(this.api, this.opts.keyFile, this.ticketSecret.schedule, this.opts.now)
    await this.poll()
    this.schedulePoll()
    this.scheduleRotation()
  }

  /**
   * SIGHUP read other farm secrets. HAProxy's ring follows the first (sending) one only; when it
   * changed, the ring is pushed now, the old secret's current key kept while it is accepted
   * (TicketKeyPusher.setSchedule); when the old one is dropped, its key leaves the ring at once.
   */
  setTicketSecrets (secrets: Buffer[]): void {
    const [secret] = secrets
    const held = this.ticketSecret
    if (secret === undefined || held === undefined || this.pusher === undefined) return
    const listed = (s: Buffer | undefined): boolean => s !== undefined && secrets.some((t) => t.equals(s))
    if (secret.equals(held.secret)) {
      if (held.outgoing === undefined || listed(held.outgoing.secret)) return
      held.outgoing = undefined
      this.pusher.setSchedule(held.schedule)
    } else {
      const outgoing = listed(held.secret) ? { secret: held.secret, schedule: held.schedule } : undefined
      this.ticketSecret = { secret: Buffer.from(secret), schedule: this.scheduleOf(secret), ...(outgoing !== undefined ? { outgoing } : {}) }
      this.pusher.setSchedule(this.ticketSecret.schedule, outgoing?.schedule)
    }
    void this.poll()
  }

  private scheduleOf (secret: Buffer): TicketKeySchedule {
    return new TicketKeySchedule({ secret, rotationSeconds: this.opts.rotationSeconds, lifetimeSeconds: this.opts.sessionTimeoutSeconds, ...(this.opts.now !== undefined ? { now: this.opts.now } : {}) })
  }

  /** No process of ours to keep from being replaced: the polls and pushes end here already. */
  beginStop (): void {
    this.stopped = true
    clearTimeout(this.pollTimer)
    clearTimeout(this.rotationTimer)
  }

  async stop (): Promise<number> {
    this.beginStop()
    await this.running
    return 0
  }

  /** No certificates to reload here: HAProxy's are HAProxy's (reload HAProxy itself). The farm secrets are the primary's. */
  async reload (): Promise<boolean> {
    this.opts.log.info('SIGHUP: no certificates to reload with --terminator haproxy (reload the local HAProxy for its certificates)')
    return true
  }

  /** HAProxy's session cache is its own; a Del from the farm has nothing to drop here. */
  dropSession (): void {}

  sample (): LoadSample | undefined { return this.latest }

  listening (): number { return 0 }

  /** One source: the local HAProxy's figures as this process last read them. */
  async metrics (): Promise<TerminatorMetrics[]> { return [{ pid: process.pid, metrics: await this.metricsPart.json() }] }

  status (): TerminatorStatus {
    const info = this.info
    const ring = this.ring
    return {
      kind: 'haproxy',
      serving: this.health.serving,
      ...(this.health.reason !== undefined ? { reason: this.health.reason } : {}),
      socket: this.opts.socket,
      keyFile: this.opts.keyFile,
      reachable: this.reachable,
      ...(info?.pid !== undefined ? { pid: info.pid } : {}),
      ...(info?.version !== undefined ? { version: info.version } : {}),
      frontends: this.frontends,
      warnings: this.warnings(),
      ticketKeys: {
        known: ring !== undefined,
        current: ring?.current ?? false,
        ...(ring?.current === true ? { epoch: ring.epoch } : {}),
        rotations: this.pushes.rotation,
        repairs: this.pushes.repair,
        ...(this.pushes.lastAt !== undefined ? { lastPushAt: this.pushes.lastAt.toISOString() } : {})
      },
      ...(this.figures.busy !== undefined ? { busy: this.figures.busy } : {}),
      ...(info?.idlePct !== undefined ? { idlePercent: info.idlePct } : {}),
      ...(info?.currConns !== undefined ? { connections: info.currConns } : {}),
      ...(info?.maxConn !== undefined ? { maxConnections: info.maxConn } : {}),
      ...(info?.sslRate !== undefined ? { sslRate: info.sslRate } : {}),
      ...(info?.sslFrontendKeyRate !== undefined ? { sslKeyRate: info.sslFrontendKeyRate } : {}),
      ...(info?.sslFrontendSessionReusePct !== undefined ? { sessionReusePercent: info.sslFrontendSessionReusePct } : {}),
      ...(info?.sslCacheLookups !== undefined ? { cacheLookups: info.sslCacheLookups } : {}),
      ...(info?.sslCacheMisses !== undefined ? { cacheMisses: info.sslCacheMisses } : {})
    }
  }

  /** What does not stop the node from serving but will bite later: said in the status. */
  private warnings (): string[] {
    return [
      ...(this.otherRings !== undefined ? [this.otherRings] : []),
      ...(this.keyFileProblem !== undefined ? [`${this.keyFileProblem}: an HAProxy reload will start from a stale ring`] : [])
    ]
  }

  certificateView (): CertificatesBody {
    return { terminator: 'haproxy', ocspStapling: false, certificates: [], note: 'the local HAProxy serves its own certificates: ask it (show ssl cert on its Runtime API)' }
  }

  describe (): Record<string, unknown> {
    return { terminator: 'haproxy', terminatorSocket: this.opts.socket, terminatorKeys: this.opts.keyFile, haproxyVersion: this.info?.version, serving: this.health.serving }
  }

  /** One round now, after any round in flight (the timers and the rotation never overlap). */
  async poll (): Promise<void> {
    this.running = this.running.then(async () => { if (!this.stopped) await this.round() })
    await this.running
  }

  private schedulePoll (): void {
    if (this.stopped) return
    this.pollTimer = setTimeout(() => { void this.poll().finally(() => this.schedulePoll()) }, this.opts.intervalMs ?? 1000)
    this.pollTimer.unref()
  }

  /** Push the next key right at the boundary, not up to a poll interval later. */
  private scheduleRotation (): void {
    if (this.stopped || this.pusher === undefined) return
    this.rotationTimer = setTimeout(() => { void this.poll().finally(() => this.scheduleRotation()) }, this.pusher.msUntilRotation() + 20)
    this.rotationTimer.unref()
  }

  private async round (): Promise<void> {
    let info: HaproxyInfo
    try {
      info = await this.api.showInfo()
    } catch (err) {
      this.unreachable(err)
      return
    }
    if (!this.reachable) this.opts.log.info({ socket: this.opts.socket, haproxyPid: info.pid, version: info.version }, 'the local haproxy answers')
    this.reachable = true
    this.info = info
    try {
      await this.checkProcess(info)
      if (this.setupProblem !== undefined) {
        this.forgetRing()
        this.publish({ serving: false, reason: this.setupProblem, ...(this.setupBrief !== undefined ? { agentReason: this.setupBrief } : {}) })
        return
      }
      const rows = await this.api.showStat()
      this.readFigures(info, rows)
      const frontendProblem = this.frontendProblem(rows)
      // The ring is checked (and repaired) before anything below can say "serving".
      this.ring = await this.checkRing()
      if (info.stopping) { this.publish({ serving: false, reason: 'local haproxy is stopping' }); return }
      if (frontendProblem !== undefined) { this.publish({ serving: false, reason: frontendProblem }); return }
      if (!this.ring.current) { this.publish({ serving: false, reason: this.ring.problem ?? 'ticket key ring is not the farm\'s' }); return }
      this.publish({ serving: true })
    } catch (err) {
      // HAProxy stopping between two commands of a round: unreachable, as the next round will
      // find it, not a failure to read it. A wedged one does not answer either.
      if (connectionLost(err) || timedOut(err)) { this.unreachable(err); return }
      this.forgetRing()
      this.opts.log.error({ err, socket: this.opts.socket }, 'reading the local haproxy failed: the agent says down')
      this.publish({ serving: false, reason: `local haproxy: ${(err as Error).message}` })
    }
  }

  private unreachable (err: unknown): void {
    if (this.reachable) this.opts.log.error({ err, socket: this.opts.socket }, 'the local haproxy does not answer: the agent says down')
    this.reachable = false
    this.info = undefined
    // What its frontends were is not what they are: unknown until it answers again.
    this.frontends = []
    this.forgetRing()
    this.publish({ serving: false, reason: this.unreachableReason(err) })
  }

  /** Why the local HAProxy gave no answer: gone (refused, reset, no socket), wedged, or another socket error. */
  private unreachableReason (err: unknown): string {
    const socket = this.opts.socket
    if (err instanceof RuntimeSocketError && err.timeoutMs !== undefined) return `local haproxy at ${socket} does not answer: no reply within ${err.timeoutMs} ms`
    if (connectionLost(err)) return `local haproxy unreachable at ${socket}`
    if (err instanceof RuntimeSocketError) return `local haproxy unreachable at ${socket} (${err.code ?? err.message})`
    return `local haproxy: ${(err as Error).message}`
  }

  /**
   * A new HAProxy process (first contact, restart, reload) is checked once, and counted. A check
   * cut short by HAProxy going away is no check: the process is checked again when it answers.
   */
  private async checkProcess (info: HaproxyInfo): Promise<void> {
    const key = haproxyProcess(info)
    if (key === this.checkedProcess && this.setupProblem === undefined) return
    if (this.seenProcess !== undefined && key !== this.seenProcess) {
      this.metricsPart.restarts.inc()
      this.pusher?.forget()
      this.opts.log.warn({ haproxyPid: info.pid }, 'the local haproxy restarted: checking its setup and ticket key ring')
    }
    this.seenProcess = key
    try {
      this.noteFindings(await checkLocalHaproxy(this.api, this.opts), key)
      if (this.setupProblem !== undefined) this.opts.log.info('the local haproxy is set up as needed now')
      this.setupProblem = undefined
      this.setupBrief = undefined
    } catch (err) {
      if (!(err instanceof TlsfleetError) || connectionLost(err)) throw err
      if (this.setupProblem !== err.message) this.opts.log.error({ err }, 'the local haproxy is not set up for this node: the agent says down')
      this.setupProblem = err.message
      this.setupBrief = err instanceof TerminatorError ? err.brief : undefined
    }
    this.checkedProcess = key
  }

  private async checkRing (): Promise<RingCheck> {
    const pusher = this.pusher as TicketKeyPusher
    const ring = await pusher.check(this.info?.startTime)
    if (ring.pushed > 0 && ring.reason !== undefined) {
      this.pushes[ring.reason] += 1
      this.pushes.lastAt = new Date()
      this.metricsPart.keyUpdates.inc({ reason: ring.reason }, ring.pushed)
      // The epoch is public (it is in every ticket's name); the keys never leave this module.
      this.opts.log.info({ file: pusher.file, epoch: ring.epoch, keys: ring.pushed, reason: ring.reason, current: ring.current, fileWritten: ring.fileWritten === true }, ring.reason === 'rotation' ? 'ticket key rotated in the local haproxy' : 'ticket key ring of the local haproxy repaired')
    }
    this.noteKeyFile(ring)
    this.figures.ringEpoch = ring.current ? ring.epoch : undefined
    return ring
  }

  /** Once per HAProxy process (its setup is checked once): other rings are warned about, by name. */
  private noteFindings (findings: LocalHaproxyFindings, process: string): void {
    this.otherRings = otherRingsWarning(this.opts.keyFile, findings.otherRings)
    if (this.otherRings !== undefined && this.warnedProcess !== process) this.opts.log.warn({ keyFile: this.opts.keyFile, otherRings: findings.otherRings }, this.otherRings)
    this.warnedProcess = process
  }

  /** A key file that cannot be rewritten is said once (and when it can be again); the node still serves. */
  private noteKeyFile (ring: RingCheck): void {
    if (!ring.current) return
    if (ring.fileProblem !== undefined && ring.fileProblem !== this.keyFileProblem) {
      this.opts.log.warn({ file: this.opts.keyFile, problem: ring.fileProblem }, 'the key file cannot be kept equal to the ring: an HAProxy reload or restart will serve a stale ring until the next check repairs it (let this node write the file and its directory)')
    } else if (ring.fileProblem === undefined && this.keyFileProblem !== undefined) {
      this.opts.log.info({ file: this.opts.keyFile }, 'the key file holds the ring again')
    }
    this.keyFileProblem = ring.fileProblem
  }

  /** The ring's state is unknown until it is read again (status says so; the agent says down). */
  private forgetRing (): void {
    this.pusher?.forget()
    this.ring = undefined
    this.figures.ringEpoch = undefined
  }

  private frontendProblem (rows: StatRow[]): string | undefined {
    const watched = this.opts.frontends
    const frontends = frontendRows(rows).filter((r) => watched.length === 0 || watched.includes(r.pxname))
    this.frontends = frontends.map((r) => ({ name: r.pxname, status: r.status }))
    const missing = watched.filter((name) => !frontends.some((r) => r.pxname === name))
    if (missing.length > 0) return `local haproxy has no frontend ${missing.join(', ')}`
    if (frontends.length === 0) return 'local haproxy has no frontend'
    const closed = frontends.filter((r) => !SERVING_FRONTEND.has(r.status))
    if (closed.length > 0) return `local haproxy frontend ${closed.map((r) => `${r.pxname} is ${r.status}`).join(', ')}`
    return undefined
  }

  /** Handshake counters from the watched frontends' SSL stats, load from `show info`. */
  private readFigures (info: HaproxyInfo, rows: StatRow[]): void {
    const watched = this.opts.frontends
    const frontends = frontendRows(rows).filter((r) => watched.length === 0 || watched.includes(r.pxname))
    const f = this.figures
    addCounters(f, info, frontends)
    f.connections = info.currSslConns ?? info.currConns
    f.busy = haproxyBusyRatio(info)
    f.reusePercent = info.sslFrontendSessionReusePct
    const at = new Date()
    const previous = this.latest
    const handshakes = { full: f.handshakesFull.total, resumed: f.handshakesResumed.total }
    const seconds = previous !== undefined ? (at.getTime() - previous.at.getTime()) / 1000 : 0
    const delta = previous !== undefined ? handshakes.full + handshakes.resumed - previous.handshakes.full - previous.handshakes.resumed : 0
    const perSecond = info.sslRate ?? (seconds > 0 ? delta / seconds : 0)
    this.latest = { at, listening: 0, workers: [], eventLoopUtilization: f.busy, handshakes, handshakesPerSecond: perSecond, connections: f.connections ?? 0 }
    this.hooks.onLoad({ busy: f.busy, handshakesPerSecond: perSecond })
  }

  private publish (health: TerminatorHealth): void {
    const changed = health.serving !== this.health.serving || health.reason !== this.health.reason || health.agentReason !== this.health.agentReason
    this.health = health
    this.figures.serving = health.serving
    if (changed && health.serving) this.opts.log.info({ socket: this.opts.socket }, 'the local haproxy serves with the farm\'s ticket keys')
    this.hooks.onHealth(health)
  }
}
