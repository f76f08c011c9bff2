import type { LoadSample } from '../agent/load-sampler.js'
import type { HostPort } from '../config/host-port.js'
import type { CertificatesBody } from '../admin/schemas.js'
import type { MetricsJson } from '../metrics/primary-metrics.js'
import type { CertificateBundle } from '../tls/certificates.js'
import type { RunAs } from './privileges.js'
import type { WorkerRestarts } from './restart-backoff.js'

/** Whether the terminator can serve clients now: one of the node's health inputs. */
/**
 * Whether the terminator serves, and if not why: `reason` in full (logs, status, admin API),
 * `agentReason` in a few words for HAProxy's agent line when the reason is long.
 */
export interface TerminatorHealth {
  serving: boolean
  reason?: string
  agentReason?: string
  /**
   * 0..1: the share of its configured workers that listen (absent: all, or no workers of its
   * own). The agent's weight is scaled by it: HAProxy must send a node that lost workers less.
   */
  servingShare?: number
}

/** A load figure once a second: the agent's weight derives from it. */
export interface TerminatorLoad {
  /** 0..1: the workers' event loop utilisation, or how busy the local HAProxy is. */
  busy: number
  handshakesPerSecond: number
  /** 0..1: connections open over those the workers admit (--max-connections, descriptors). */
  connectionFill?: number
  /** Connections the workers admit at once, when every one has a bound. */
  connectionLimit?: number
}

/** What the terminator tells the node about itself; the primary wires these to the node state. */
export interface TerminatorHooks {
  /** A function is read each time the node's health is (a reason that follows time, as the workers' crash loop). */
  onHealth: (health: TerminatorHealth | (() => TerminatorHealth)) => void
  onLoad: (load: TerminatorLoad) => void
  /** A worker process exited (its counters stay on /metrics); `final`: the series it sent as it crashed, fresher than its last report. */
  onWorkerExit?: (pid: number, final?: MetricsJson) => void
}

/** One source of /metrics series: a worker's report, or the local HAProxy's figures. */
export interface TerminatorMetrics { pid: number; metrics: MetricsJson }

/** What /v1/state shows about the terminator (`terminator`). Key material never appears here. */
export interface TerminatorStatus {
  kind: 'tlsfleet' | 'haproxy'
  serving: boolean
  reason?: string
  /** The local HAProxy (kind haproxy): its Runtime API and key file as configured. */
  socket?: string
  keyFile?: string
  reachable?: boolean
  pid?: number
  version?: string
  frontends?: Array<{ name: string; status: string }>
  /** Problems that do not stop it from serving (kind haproxy: a key file it cannot rewrite, other ticket key rings). */
  warnings?: string[]
  /**
   * The ticket key ring: known (read from HAProxy since it last answered) or not, current or
   * not, the encrypting key's epoch, pushes by reason.
   */
  ticketKeys?: { known: boolean; current: boolean; epoch?: number; rotations: number; repairs: number; lastPushAt?: string }
  busy?: number
  idlePercent?: number
  connections?: number
  maxConnections?: number
  sslRate?: number
  sslKeyRate?: number
  sessionReusePercent?: number
  cacheLookups?: number
  cacheMisses?: number
}

/** What a terminator is given when it starts serving. */
export interface TerminatorStart {
  /** Where plaintext goes (tlsfleet's workers), or the application the node probes. */
  backend: HostPort | undefined
  /** Secrets the ticket keys derive from, current first. */
  ticketSecrets: Buffer[]
  /** Files the node generated in --state-dir (admin.token, the sync replay state): handed to --user. */
  stateFiles: string[]
}

/**
 * Who terminates TLS on a node: tlsfleet's own workers (`--terminator tlsfleet`) or a local
 * HAProxy tlsfleet companions (`--terminator haproxy`). The primary knows only this interface:
 * the node state gets its health and load through the hooks, the admin API and /metrics read
 * the views below, and the start and stop order is the same for both.
 */
export interface NodeTerminator {
  readonly kind: 'tlsfleet' | 'haproxy'
  /** Worker processes this node runs (0 when HAProxy terminates). */
  readonly workersConfigured: number
  /** Whether this node forwards plaintext to --backend itself (else the demo backend is not started). */
  readonly forwardsToBackend: boolean
  /** The user the node switches to (--user), which then owns --state-dir; undefined without a switch. */
  readonly runAs?: RunAs
  /** Everything that can be refused, before anything binds. Throws a TlsfleetError. */
  prepare: () => Promise<void>
  /** Certificates this node loaded (the stud sync format keys its packets with the first). */
  certificates: () => CertificateBundle[]
  /** Serve: workers accept, or the local HAProxy's key ring is kept and its figures read. */
  start: (context: TerminatorStart) => Promise<void>
  /**
   * The node is stopping, said synchronously before anything is awaited (stop() comes later,
   * once HAProxy was told): from now on no worker is forked nor replaced. A stop signal reaches
   * the workers too (systemd signals every process of the unit), and those that left while the
   * node still talked to HAProxy were replaced, new workers serving after the node said it stops.
   */
  beginStop: () => void
  /** Stop serving; open connections get `graceMs`. Never stops a local HAProxy. Resolves to the number of worker processes that hung and were killed. */
  stop: (graceMs: number) => Promise<number>
  /** SIGHUP: reload what can be reloaded; false when refused. */
  reload: () => Promise<boolean>
  /**
   * SIGHUP read other farm secrets: the ticket keys of these secrets from now on, current first
   * (it issues), the others still accepted. Only called after start().
   */
  setTicketSecrets: (secrets: Buffer[]) => void
  /** A session the farm found bad (sync Del): forget local copies. */
  dropSession: (id: Buffer) => void
  /** The latest load sample (never waits). */
  sample: () => LoadSample | undefined
  /** Workers listening now (0 when HAProxy terminates). */
  listening: () => number
  /** Its workers' restarts and crash loop, for /v1/state (absent: no workers of its own). */
  workerRestarts?: () => WorkerRestarts
  /** Series to merge into /metrics, by process (a source that does not answer keeps its last). */
  metrics: () => Promise<TerminatorMetrics[]>
  /**
   * Its series are read in the primary itself (no worker to ask), so /metrics reads them fresh
   * every time, like the primary's own: a key pushed a moment ago shows at once.
   */
  readonly metricsInProcess: boolean
  status: () => TerminatorStatus
  /** The certificates served and their OCSP staples (GET /v1/certificates). */
  certificateView: () => CertificatesBody
  /** Fields for the "tlsfleet node ready" log line. */
  describe: () => Record<string, unknown>
}
