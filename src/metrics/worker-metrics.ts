import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * Metrics a worker keeps about the connections it terminates. The primary asks every worker
 * for `registry.getMetricsAsJSON()` and merges them (prom-client's AggregatorRegistry), so
 * /metrics shows node-wide totals. Names follow Prometheus conventions: `_total` counters,
 * base units (seconds), low-cardinality labels.
 */
export class WorkerMetrics {
  readonly registry = new Registry()

  readonly handshakes = new Counter({
    name: 'tlsfleet_handshakes_total',
    help: 'Completed TLS handshakes by result (full or resumed) and protocol version',
    labelNames: ['result', 'version'] as const,
    registers: [this.registry]
  })

  readonly handshakeFailures = new Counter({
    name: 'tlsfleet_handshake_failures_total',
    help: 'Connections closed before the TLS handshake completed, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry]
  })

  readonly clientCertificateRejections = new Counter({
    name: 'tlsfleet_client_certificate_rejections_total',
    help: 'Handshakes refused because of the client certificate (--client-verify), by OpenSSL\'s verify code or "missing"',
    labelNames: ['reason'] as const,
    registers: [this.registry]
  })

  readonly handshakeDuration = new Histogram({
    name: 'tlsfleet_handshake_duration_seconds',
    help: 'Time from the first ClientHello byte to the completed handshake',
    labelNames: ['result'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry]
  })

  readonly cacheLookups = new Counter({
    name: 'tlsfleet_session_cache_lookups_total',
    help: 'Session cache lookups by level (l1 in the worker, l2 in the primary) and result',
    labelNames: ['level', 'result'] as const,
    registers: [this.registry]
  })

  readonly cacheGetTimeouts = new Counter({
    name: 'tlsfleet_session_cache_get_timeouts_total',
    help: 'L2 lookups that got no answer from the primary in time (the handshake went on as a full one)',
    registers: [this.registry]
  })

  readonly sessionsDeleted = new Counter({
    name: 'tlsfleet_sessions_invalidated_total',
    help: 'Sessions removed because they were offered and failed to resume',
    registers: [this.registry]
  })

  readonly proxyHeaderErrors = new Counter({
    name: 'tlsfleet_proxy_protocol_errors_total',
    help: 'Connections closed because of a malformed or oversized PROXY protocol header, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry]
  })

  readonly connectionsAccepted = new Counter({
    name: 'tlsfleet_connections_accepted_total',
    help: 'TCP connections accepted by the workers',
    registers: [this.registry]
  })

  readonly connectionsActive = new Gauge({
    name: 'tlsfleet_connections_active',
    help: 'Client connections currently open in the workers',
    registers: [this.registry]
  })

  readonly backendErrors = new Counter({
    name: 'tlsfleet_backend_errors_total',
    help: 'Failures talking to the backend, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry]
  })

  constructor () {
    // Same names as the primary's: aggregation sums CPU and memory over the whole node.
    collectDefaultMetrics({ register: this.registry })
  }
}
