import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Registry, type MetricObjectWithValues, type MetricValue, type RegistryContentType } from 'prom-client'
import { EVENT_LOOP_MONITOR_MS } from './event-loop.js'
import { MonotonicSums } from './monotonic-sums.js'

export type MetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>

/** What the primary's gauges read when /metrics is scraped. */
export interface PrimaryGaugeSources {
  l2: () => { entries: number; bytes: number }
  workers: () => { configured: number; listening: number }
  /** What the agent reports now: the effective state, the weight and the spare capacity behind it. */
  state: () => { effective: string; weightPercent: number; spareCapacity?: number }
}

const AGENT_STATES = ['ready', 'drain', 'maint', 'down'] as const

/**
 * The primary's own metrics (L2, workers, agent, admin API, HAProxy commands, backend probe,
 * and the sync counters the sync service registers here), and the node-wide /metrics page:
 * these merged with every worker's (prom-client's AggregatorRegistry sums same-named series,
 * so process CPU and memory cover the whole node). Names follow Prometheus conventions.
 */
export class PrimaryMetrics {
  /** The primary's tlsfleet_* series (the sync, store and terminator parts register here too). */
  readonly registry = new Registry()
  /** Process CPU, memory, event loop: summed with the workers' on the page. */
  private readonly processRegistry = new Registry()
  readonly haproxyCommands: Counter<'command' | 'result'>
  readonly adminRequests: Counter<'status'>
  readonly adminEvictions: Counter
  readonly agentReplies: Counter<'state'>
  readonly agentInputErrors: Counter<'reason'>
  readonly backendReachable: Gauge
  readonly farmSecretReloads: Counter<'result'>
  private readonly scrapes: Counter<'result'>
  /** Each live worker's last full report, by pid: what it has counted so far. */
  private readonly lastReports = new Map<number, MetricsJson>()
  /** Counters and histograms of workers that died, summed: they keep counting on the page. */
  private retired: MetricsJson = []
  /** Float sums never served lower than the last page by rounding (a dead worker's counts added in). */
  private readonly sums = new MonotonicSums()
  /** The collected part of the page (workers, retired counts, process figures), and when it was asked for. */
  private rest?: { at: number; part: Promise<CollectedPart> }

  constructor (sources: PrimaryGaugeSources) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.processRegistry, eventLoopMonitoringPrecision: EVENT_LOOP_MONITOR_MS })
    new Gauge({ name: 'tlsfleet_session_cache_entries', help: 'Sessions held in L2', registers, collect () { this.set(sources.l2().entries) } })
    new Gauge({ name: 'tlsfleet_session_cache_bytes', help: 'What the sessions in L2 cost the primary, as --cache-max-bytes counts them (RSS growth per session measured in a running process)', registers, collect () { this.set(sources.l2().bytes) } })
    new Gauge({
      name: 'tlsfleet_workers',
      help: 'Worker processes: configured, and listening now',
      labelNames: ['state'] as const,
      registers,
      collect () {
        const workers = sources.workers()
        this.set({ state: 'listening' }, workers.listening)
        this.set({ state: 'configured' }, workers.configured)
      }
    })
    new Gauge({
      name: 'tlsfleet_agent_state',
      help: 'State the agent reports: 1 for the current one (down when unhealthy, else the admin state)',
      labelNames: ['state'] as const,
      registers,
      collect () {
        const effective = sources.state().effective
        for (const s of AGENT_STATES) this.set({ state: s }, s === effective ? 1 : 0)
      }
    })
    new Gauge({ name: 'tlsfleet_agent_weight_percent', help: 'Weight percent the agent reports (spare capacity, smoothed)', registers, collect () { this.set(sources.state().weightPercent) } })
    new Gauge({ name: 'tlsfleet_spare_capacity_ratio', help: 'Smoothed spare capacity 0..1 behind the agent weight', registers, collect () { this.set(sources.state().spareCapacity ?? 1) } })
    this.haproxyCommands = new Counter({ name: 'tlsfleet_haproxy_commands_total', help: 'HAProxy Runtime API commands sent by this node, by command and result', labelNames: ['command', 'result'] as const, registers })
    this.adminRequests = new Counter({ name: 'tlsfleet_admin_requests_total', help: 'Admin API requests answered, by HTTP status', labelNames: ['status'] as const, registers })
    this.adminEvictions = new Counter({ name: 'tlsfleet_admin_connections_evicted_total', help: 'Admin API connections closed to make room for a new one (at 128 open)', registers })
    this.agentReplies = new Counter({ name: 'tlsfleet_agent_replies_total', help: 'Agent-check replies sent, by the state they reported', labelNames: ['state'] as const, registers })
    this.agentInputErrors = new Counter({ name: 'tlsfleet_agent_input_errors_total', help: 'Agent port connections with bad input or cut by a bound, by reason', labelNames: ['reason'] as const, registers })
    this.backendReachable = new Gauge({ name: 'tlsfleet_backend_reachable', help: 'Whether the backend accepted the last TCP probe(s) (1) or not (0)', registers })
    this.farmSecretReloads = new Counter({ name: 'tlsfleet_farm_secret_reloads_total', help: 'Farm secret reloads (SIGHUP, with --sync-secret-file) by result: ok (other secrets read and in use: sync, store, ticket keys), unchanged (the files hold the secrets in use), refused (a file broken: the secrets in use stay)', labelNames: ['result'] as const, registers })
    for (const result of ['ok', 'unchanged', 'refused']) this.farmSecretReloads.inc({ result }, 0)
    this.scrapes = new Counter({ name: 'tlsfleet_metrics_scrapes_total', help: 'GET /metrics answered, by whether the workers were asked (collected) or their last reports were reused (cached)', labelNames: ['result'] as const, registers })
  }

  /**
   * The node-wide page: the primary's own tlsfleet_* series, read now (cheap, and what an
   * operator just did shows at once), then the rest — the workers' reports, what dead workers
   * had counted, and process figures summed over the node — built at most once per `maxAgeMs`
   * however many scrapers ask (concurrent scrapes share one collection), so scraping cannot
   * load the workers or move the agent's weight. `collect` answers for live workers only: a
   * worker that exited is retired through workerExited, never also reported.
   */
  async page (collect: () => Promise<Array<{ pid: number; metrics: MetricsJson }>>, maxAgeMs = 1000, now = Date.now()): Promise<MetricsPage> {
    let rest = this.rest
    if (rest === undefined || now - rest.at >= maxAgeMs) {
      const part = this.collectRest(collect)
      rest = { at: now, part }
      this.rest = rest
      part.catch(() => { if (this.rest?.part === part) this.rest = undefined })
      this.scrapes.inc({ result: 'collected' })
    } else {
      this.scrapes.inc({ result: 'cached' })
    }
    const [own, collected] = await Promise.all([this.registry.getMetricsAsJSON(), rest.part])
    if (own.some((m) => collected.names.has(m.name))) {
      // A family on both sides (never so far): merge it properly, the slow way.
      const merged = AggregatorRegistry.aggregate([own, collected.json])
      return { contentType: merged.contentType, body: await merged.metrics() }
    }
    const text = await this.registry.metrics()
    return { contentType: this.registry.contentType, body: text + collected.text }
  }

  /**
   * A worker died: keep its counters and histograms on the page (Prometheus reads a counter
   * that goes down as a reset), as prom-client's cluster aggregation would lose them. Gauges
   * (memory, connections open) go with it. `final`: what a crashing worker sent as it went
   * (its counts since the last scrape), kept instead of its last report.
   */
  workerExited (pid: number, final?: MetricsJson): void {
    const last = final ?? this.lastReports.get(pid)
    this.lastReports.delete(pid)
    if (last === undefined) return
    // prom-client's JSON names types as strings (its typings say an enum).
    const kept = last.filter((m) => ['counter', 'histogram'].includes(String(m.type)))
    this.retired = this.retired.length === 0 ? kept : toJson(AggregatorRegistry.aggregate([this.retired, kept]))
    this.rest = undefined
  }

  /** Ask the workers; those that did not answer in time still count with their last report. */
  private async collectRest (collect: () => Promise<Array<{ pid: number; metrics: MetricsJson }>>): Promise<CollectedPart> {
    // Only live workers answer: the pool leaves out a worker that died during the round (ReportRound).
    for (const report of await collect()) this.lastReports.set(report.pid, report.metrics)
    const parts = [await this.processRegistry.getMetricsAsJSON(), this.retired, ...this.lastReports.values()]
    for (const part of parts) for (const m of part) { const as = AGGREGATE_AS.get(m.name); if (as !== undefined) m.aggregator = as }
    const summed = toJson(AggregatorRegistry.aggregate(parts))
    const json = this.sums.hold(summed)
    const merged = AggregatorRegistry.aggregate([json])
    return { json, names: new Set(json.map((m) => m.name)), text: await merged.metrics() }
  }
}

interface CollectedPart { json: MetricsJson; names: Set<string>; text: string }

/** Per-process figures that a sum over the node's processes would make meaningless (prom-client sums what it does not name). */
const AGGREGATE_AS: ReadonlyMap<string, 'max'> = new Map([['process_max_fds', 'max']])

export interface MetricsPage { contentType: string; body: string }

/** An aggregated registry's series as JSON again (aggregate() only gives a Registry). */
function toJson (registry: Registry<RegistryContentType>): MetricsJson {
  // getMetricsAsJSON() of an aggregated registry is synchronous in effect: its metrics have no
  // collect callbacks, so the values are read directly.
  const metrics = registry.getMetricsAsArray() as unknown as Array<{ get: () => MetricObjectWithValues<MetricValue<string>> }>
  return metrics.map((m) => m.get()) as MetricsJson
}
