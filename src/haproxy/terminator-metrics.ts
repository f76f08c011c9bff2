import { Counter, Gauge, Registry } from 'prom-client'
import type { MetricsJson } from '../metrics/primary-metrics.js'
import { haproxyProcess, type HaproxyInfo } from './show-info.js'
import type { StatRow } from './stats.js'
import type { PushReason } from './ticket-key-pusher.js'

/**
 * A counter HAProxy keeps, read again and again: it restarts from 0 in a new HAProxy process
 * (restart or reload), and tlsfleet's own counter must not go backwards, so the first value of
 * a new process is all new. The process is told by `show info`'s pid and start time: a new one
 * that passed the last value before it was read would otherwise look like growth, and its counts
 * up to the old value be lost. A drop within one process (counters cleared) counts as a restart
 * too. The first reading is taken whole.
 */
export class MonotonicTotal {
  total = 0
  private last: number | undefined
  private process: string | undefined

  /** `process`: haproxyProcess() of the `show info` read with the value. */
  update (value: number | undefined, process?: string): void {
    if (value === undefined || !Number.isFinite(value) || value < 0) return
    const fresh = this.last === undefined || value < this.last || (process !== undefined && this.process !== undefined && process !== this.process)
    this.total += fresh ? value : value - (this.last as number)
    this.last = value
    if (process !== undefined) this.process = process
  }
}

/** The figures the metrics show, as the terminator last read them. */
export interface HaproxyFigures {
  serving: boolean
  handshakesFull: MonotonicTotal
  handshakesResumed: MonotonicTotal
  cacheLookups: MonotonicTotal
  cacheMisses: MonotonicTotal
  connections?: number
  busy?: number
  reusePercent?: number
  /** Epoch of the encrypting key while the ring is current. */
  ringEpoch?: number
}

/**
 * One reading of the local HAProxy's counters added to the totals: `show info` (the process, its
 * session cache) and the `show stat` rows of the watched frontends (handshakes: ssl_sess made a
 * new session, a full handshake; ssl_reused_sess resumed one).
 */
export function addCounters (f: HaproxyFigures, info: HaproxyInfo, frontends: StatRow[]): void {
  const process = haproxyProcess(info)
  const sum = (field: string): number => frontends.reduce((total, r) => total + (Number(r.fields[field]) || 0), 0)
  f.handshakesFull.update(sum('ssl_sess'), process)
  f.handshakesResumed.update(sum('ssl_reused_sess'), process)
  f.cacheLookups.update(info.sslCacheLookups, process)
  f.cacheMisses.update(info.sslCacheMisses, process)
}

/**
 * The local HAProxy's TLS figures under tlsfleet's names, so dashboards read one set of series
 * whichever terminator a node has: handshakes by result (HAProxy does not split them by
 * version: `version="all"`), HAProxy's session cache as `level="haproxy"`, open TLS
 * connections. Plus what only this mode has: whether the terminator serves, how busy it is,
 * the key ring's epoch, key updates and HAProxy restarts noticed. No key material.
 */
export class HaproxyTerminatorMetrics {
  private readonly registry = new Registry()
  readonly keyUpdates: Counter<'reason'>
  readonly restarts: Counter

  constructor (figures: () => HaproxyFigures) {
    const registers = [this.registry]
    new Counter({
      name: 'tlsfleet_handshakes_total',
      help: 'Completed TLS handshakes by result (full or resumed) and protocol version',
      labelNames: ['result', 'version'] as const,
      registers,
      collect () {
        const f = figures()
        this.reset()
        this.inc({ result: 'full', version: 'all' }, f.handshakesFull.total)
        this.inc({ result: 'resumed', version: 'all' }, f.handshakesResumed.total)
      }
    })
    new Counter({
      name: 'tlsfleet_session_cache_lookups_total',
      help: 'Session cache lookups by level (l1 in the worker, l2 in the primary, haproxy for a local HAProxy) and result',
      labelNames: ['level', 'result'] as const,
      registers,
      collect () {
        const f = figures()
        this.reset()
        this.inc({ level: 'haproxy', result: 'miss' }, f.cacheMisses.total)
        this.inc({ level: 'haproxy', result: 'hit' }, Math.max(0, f.cacheLookups.total - f.cacheMisses.total))
      }
    })
    new Gauge({ name: 'tlsfleet_connections_active', help: 'Client connections currently open in the workers', registers, collect () { this.set(figures().connections ?? 0) } })
    new Gauge({ name: 'tlsfleet_terminator_serving', help: 'Whether the TLS terminator can serve (1) or not (0): workers listening, or the local HAProxy reachable, its frontends open and its key ring current', registers, collect () { this.set(figures().serving ? 1 : 0) } })
    new Gauge({ name: 'tlsfleet_terminator_busy_ratio', help: 'How busy the local HAProxy is, 0..1: the larger of 1 - Idle_pct/100 and CurrConns/Maxconn', registers, collect () { this.set(figures().busy ?? 0) } })
    new Gauge({ name: 'tlsfleet_terminator_session_reuse_ratio', help: 'Share of the local HAProxy\'s TLS handshakes that resumed a session (SslFrontendSessionReuse_pct / 100)', registers, collect () { this.set((figures().reusePercent ?? 0) / 100) } })
    new Gauge({ name: 'tlsfleet_ticket_key_ring_epoch', help: 'Epoch of the ticket key the local HAProxy encrypts with, while its ring is the farm\'s (0 when not)', registers, collect () { this.set(figures().ringEpoch ?? 0) } })
    this.keyUpdates = new Counter({ name: 'tlsfleet_ticket_key_updates_total', help: 'Ticket keys pushed into the local HAProxy (set ssl tls-key), by reason: rotation, or repair of a ring that was not the farm\'s', labelNames: ['reason'] as const, registers })
    for (const reason of ['rotation', 'repair'] as PushReason[]) this.keyUpdates.inc({ reason }, 0)
    this.restarts = new Counter({ name: 'tlsfleet_terminator_restarts_total', help: 'New local HAProxy processes noticed (restart or reload)', registers })
  }

  async json (): Promise<MetricsJson> {
    return await this.registry.getMetricsAsJSON() as MetricsJson
  }
}
