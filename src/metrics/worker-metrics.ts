import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { FastHistogram, type HistogramSeries } from './fast-histogram.js'
import { EVENT_LOOP_MONITOR_MS } from './event-loop.js'

export type HandshakeResult = 'full' | 'resumed'
type LookupLevel = 'l1' | 'l2'
type LookupResult = 'hit' | 'miss'

/** Handshake buckets, seconds: a resumed handshake on an idle node takes ~0.3 ms. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

/**
 * Metrics a worker keeps about the connections it terminates. The primary asks every worker
 * for `registry.getMetricsAsJSON()` and merges them (prom-client's AggregatorRegistry), so
 * /metrics shows node-wide totals. Names follow Prometheus conventions: `_total` counters,
 * base units (seconds), low-cardinality labels.
 *
 * The connection path only adds to plain numbers through the methods below; the prom-client
 * metrics copy them when they are read (`collect`), at most once a second. A prom-client
 * `inc` with labels hashes and validates them on every call, and a connection made ~6 of
 * them: a measurable share of a resumed handshake (docs/benchmarks.md).
 */
export class WorkerMetrics {
  readonly registry = new Registry()

  private readonly figures = new ConnectionFigures()
  private readonly durations: Record<HandshakeResult, HistogramSeries>

  readonly handshakes: Counter<'result' | 'version'>
  readonly cacheLookups: Counter<'level' | 'result'>
  readonly cacheGetTimeouts: Counter

  constructor () {
    const registers = [this.registry]
    // `this` inside collect() is the prom-client metric; it reads `figures`.
    const figures = this.figures
    this.handshakes = new Counter({
      name: 'tlsfleet_handshakes_total',
      help: 'Completed TLS handshakes by result (full or resumed) and protocol version',
      labelNames: ['result', 'version'] as const,
      registers,
      collect () {
        this.reset()
        for (const [version, [full, resumed]] of figures.handshakesByVersion) {
          this.inc({ result: 'full', version }, full)
          this.inc({ result: 'resumed', version }, resumed)
        }
      }
    })
    byReason(registers, 'tlsfleet_handshake_failures_total', 'Connections closed before the TLS handshake completed, by reason', figures.failures)
    byReason(registers, 'tlsfleet_client_certificate_rejections_total', 'Handshakes refused because of the client certificate (--client-verify), by OpenSSL\'s verify code or "missing"', figures.clientCertificateRejections)
    const histogram = new FastHistogram('tlsfleet_handshake_duration_seconds', 'Time from the ClientHello read (after any PROXY header) to the completed handshake: the server\'s part, not the client\'s sending', 'result', DURATION_BUCKETS, this.registry)
    this.durations = { full: histogram.series('full'), resumed: histogram.series('resumed') }
    this.cacheLookups = new Counter({
      name: 'tlsfleet_session_cache_lookups_total',
      help: 'Session cache lookups by level (l1 in the worker, l2 in the primary) and result',
      labelNames: ['level', 'result'] as const,
      registers,
      collect () {
        this.reset()
        for (const level of ['l1', 'l2'] as const) {
          for (const result of ['hit', 'miss'] as const) {
            this.inc({ level, result }, figures.lookups[level][result])
          }
        }
      }
    })
    this.cacheGetTimeouts = total(registers, 'tlsfleet_session_cache_get_timeouts_total', 'L2 lookups that got no answer from the primary in time (the handshake went on as a full one)', () => figures.getTimeouts)
    total(registers, 'tlsfleet_sessions_other_context_total', 'Farm sessions offered to OpenSSL and refused because another session-ID context made them (another certificate of the node, or nodes set up differently: --session-id-context, --client-verify, --client-ca, the certificates of a name); not dropped', () => figures.otherContext)
    total(registers, 'tlsfleet_sessions_declined_total', 'Farm sessions offered to OpenSSL and declined for the offering client\'s reasons (extended master secret, protocol version or cipher it did not offer): a full handshake, the session kept (its own client still resumes it)', () => figures.declined)
    total(registers, 'tlsfleet_sessions_invalidated_total', 'Sessions removed from the farm: offered and failed to resume, or resumed with a client certificate revoked since (--crl)', () => figures.invalidated)
    byLabel(registers, 'tlsfleet_connections_closed_before_tls_total', 'Connections closed before their first TLS byte, not handshake failures: health checks (header="local": a PROXY LOCAL header, as HAProxy\'s check with send-proxy-v2 sends; "none": a bare connect) or clients gone at once ("proxy")', 'header', figures.closedBeforeTls)
    byReason(registers, 'tlsfleet_proxy_protocol_errors_total', 'Connections closed because of a malformed or oversized PROXY protocol header, by reason', figures.proxyErrors)
    total(registers, 'tlsfleet_connections_accepted_total', 'TCP connections accepted by the workers', () => figures.accepted)
    new Gauge({
      name: 'tlsfleet_connections_active',
      help: 'Client connections currently open in the workers',
      registers,
      collect () { this.set(figures.active) }
    })
    byReason(registers, 'tlsfleet_connections_refused_total', 'Connections closed unserved as they arrived, by the bound that refused them: max_connections (the worker\'s share of --max-connections), fd_limit (what its file-descriptor limit leaves room for), per_source (--max-handshakes-per-source)', figures.refused)
    new Gauge({
      name: 'tlsfleet_connections_limit',
      help: 'Client connections the workers admit at once: the lower of --max-connections and what their file-descriptor limits allow (0 = no bound known)',
      registers,
      collect () { this.set(figures.connectionLimit) }
    })
    total(registers, 'tlsfleet_fd_exhaustions_total', 'Times a worker found its file descriptors exhausted (EMFILE/ENFILE): while they are, new connections are accepted and closed unanswered by libuv', () => figures.fdExhaustions)
    byReason(registers, 'tlsfleet_backend_errors_total', 'Failures talking to the backend, by reason', figures.backendFailures)
    // Same names as the primary's: aggregation sums CPU and memory over the whole node.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_MONITOR_MS })
  }

  connectionOpened (): void { this.figures.accepted++; this.figures.active++ }
  connectionClosed (): void { this.figures.active-- }

  handshakeDone (result: HandshakeResult, version: string, seconds: number): void {
    const byVersion = this.figures.handshakesByVersion
    let counts = byVersion.get(version)
    if (counts === undefined) {
      counts = [0, 0]
      byVersion.set(version, counts)
    }
    counts[result === 'full' ? 0 : 1]++
    this.durations[result].observe(seconds)
  }

  handshakeFailed (reason: string): void { add(this.figures.failures, reason) }
  clientCertificateRejected (reason: string): void { add(this.figures.clientCertificateRejections, reason) }
  proxyHeaderError (reason: string): void { add(this.figures.proxyErrors, reason) }
  closedBeforeTls (header: string): void { add(this.figures.closedBeforeTls, header) }
  backendError (reason: string): void { add(this.figures.backendFailures, reason) }
  connectionRefused (reason: string): void { add(this.figures.refused, reason) }
  fdExhausted (): void { this.figures.fdExhaustions++ }
  /** What the worker admits at once now (0 = no bound known), for the gauge. */
  set connectionLimit (limit: number) { this.figures.connectionLimit = limit }
  sessionInvalidated (): void { this.figures.invalidated++ }
  sessionOtherContext (): void { this.figures.otherContext++ }
  sessionDeclined (): void { this.figures.declined++ }
  cacheGetTimeout (): void { this.figures.getTimeouts++ }

  cacheLookup (level: LookupLevel, result: LookupResult): void {
    this.figures.lookups[level][result]++
  }

  /** Completed handshakes so far (the worker's report to the primary's load sampler). */
  handshakeTotals (): { full: number; resumed: number } {
    let full = 0
    let resumed = 0
    for (const [f, r] of this.figures.handshakesByVersion.values()) { full += f; resumed += r }
    return { full, resumed }
  }

  /** Open connections now. */
  get activeConnections (): number { return this.figures.active }
}

/** The counts behind the worker's metrics: plain numbers the connection path adds to. */
class ConnectionFigures {
  accepted = 0
  active = 0
  invalidated = 0
  otherContext = 0
  declined = 0
  getTimeouts = 0
  fdExhaustions = 0
  connectionLimit = 0
  // Label values every node can count are there from the start at 0 (Prometheus practice: a
  // rate() or an alert on a series must not wait for its first event); others appear when counted.
  /** [full, resumed] by protocol version (getProtocol(): 'TLSv1.2', 'TLSv1.3', ...). */
  readonly handshakesByVersion = new Map<string, [number, number]>([['TLSv1.2', [0, 0]], ['TLSv1.3', [0, 0]]])
  readonly failures = zeroes(['hello_timeout', 'timeout', 'closed', 'not_tls', 'tls_error', 'sni_nomatch', 'client_certificate'])
  readonly clientCertificateRejections = new Map<string, number>()
  readonly proxyErrors = new Map<string, number>()
  readonly closedBeforeTls = zeroes(['local', 'none', 'proxy'])
  readonly backendFailures = zeroes(['connect_timeout', 'connect_failed', 'reset', 'proxy_header'])
  readonly refused = zeroes(['max_connections', 'fd_limit', 'per_source'])
  readonly lookups: Record<LookupLevel, Record<LookupResult, number>> = { l1: { hit: 0, miss: 0 }, l2: { hit: 0, miss: 0 } }
}

function zeroes (keys: string[]): Map<string, number> {
  return new Map(keys.map((key) => [key, 0]))
}

function add (counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1)
}

/** A counter without labels, copied from a plain number when scraped. */
function total (registers: Registry[], name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers,
    collect () {
      this.reset()
      this.inc(read())
    }
  })
}

/** A `{reason}` counter that copies `counts` when read. */
function byReason (registers: Registry[], name: string, help: string, counts: Map<string, number>): Counter<'reason'> {
  return byLabel(registers, name, help, 'reason', counts)
}

function byLabel<L extends string> (registers: Registry[], name: string, help: string, label: L, counts: Map<string, number>): Counter<L> {
  return new Counter({
    name,
    help,
    labelNames: [label] as const,
    registers,
    collect () {
      this.reset()
      for (const [value, n] of counts) this.inc({ [label]: value } as Partial<Record<L, string>>, n)
    }
  })
}
