import type { Registry } from 'prom-client'
import { NONE_RETIRED, type LoadSample, type RetiredCounts } from '../agent/load-sampler.js'
import { serverStatView, type HaproxyCoordinator } from '../haproxy/coordinator.js'
import type { StatRow } from '../haproxy/stats.js'
import type { TicketKeySchedule } from '../tls/ticket-keys.js'
import { stapleAttention } from './certificate-attention.js'
import { DashboardHistory } from './dashboard-history.js'
import type { CacheLevelBody, DashboardBody, FarmViewBody, Lookups, SyncPacketsBody, TicketsBody } from './dashboard-schema.js'
import type { CacheBody, CertificateBody, CertificatesBody, PeersBody, StateBody } from './schemas.js'

export interface NodeDashboardOptions {
  /** The primary's registry: the sync service counts its packets (updates) there. */
  registry: Registry
  /** Unset when --session-tickets is off. */
  tickets?: { schedule: TicketKeySchedule; farmWide: boolean; farmSecrets: number }
  coordinator?: HaproxyCoordinator
  intervalSeconds: number
  history?: DashboardHistory
  now?: () => number
}

const SYNC_COUNTER = 'tlsfleet_sync_packets_total'
/** HAProxy is asked at most this often, however many browsers watch. */
const HAPROXY_VIEW_MS = 1000

function lookups (hits: number, misses: number): Lookups {
  const total = hits + misses
  return { hits, misses, hitRatio: total === 0 ? null : Math.round((hits / total) * 10_000) / 10_000 }
}

/**
 * The live dashboard's data for a terminating node: it keeps a short per-second history (fed by
 * the primary's load sampler, so no extra work reaches the workers) and, on request, joins it
 * with the admin views (state, caches, peers), the sync counters, the ticket-key schedule and
 * HAProxy's view of every server of the node's backend. Read-only.
 */
export class NodeDashboard {
  readonly history: DashboardHistory
  private readonly now: () => number
  /** Counted by workers that have exited, as of the last sample. */
  private retired: RetiredCounts = NONE_RETIRED
  private haproxyView?: { at: number; view: Promise<FarmViewBody> }

  /** The ticket schedule shown: the one the terminator issues under (SIGHUP may change it). */
  private ticketView: NodeDashboardOptions['tickets']

  constructor (private readonly opts: NodeDashboardOptions) {
    this.ticketView = opts.tickets
    this.history = opts.history ?? new DashboardHistory()
    this.now = opts.now ?? Date.now
  }

  /** Called with every load sample; never throws (a failed read only leaves a gap). */
  async record (sample: LoadSample, l2: { hits: number; misses: number }): Promise<void> {
    this.retired = sample.retired ?? NONE_RETIRED
    try {
      // A terminator without workers (a local HAProxy) gives node totals: one counter source.
      const workers = sample.workers.length > 0 || sample.listening > 0 ? sample.workers : [{ handshakes: sample.handshakes, l1: { entries: 0, bytes: 0, hits: 0, misses: 0 } }]
      this.history.record({ at: sample.at.getTime(), workers, l2: { hits: l2.hits, misses: l2.misses }, sync: await this.syncCounters() })
    } catch { /* the next sample fills the history again */ }
  }

  async body (views: { state: StateBody; cache: CacheBody; peers: PeersBody; certificates: CertificatesBody }): Promise<DashboardBody> {
    const minute = this.history.window(60)
    const [sync, haproxy] = await Promise.all([this.syncCounters(), this.farmView()])
    // Lookups since start: the live workers' and those of workers that exited (entries and bytes are now's).
    const l1 = views.cache.l1.reduce((sum, w) => ({ entries: sum.entries + w.entries, bytes: sum.bytes + w.bytes, hits: sum.hits + w.hits, misses: sum.misses + w.misses }), { entries: 0, bytes: 0, hits: this.retired.hits, misses: this.retired.misses })
    const l2 = views.cache.l2
    const level = (name: string, totals: { entries: number; bytes: number; hits: number; misses: number }): CacheLevelBody => {
      const recent = minute.cache[name] ?? { hits: 0, misses: 0 }
      return { level: name, entries: totals.entries, bytes: totals.bytes, ...lookups(totals.hits, totals.misses), lastMinute: lookups(recent.hits, recent.misses) }
    }
    const packets: SyncPacketsBody[] = Object.entries(sync).map(([key, total]) => {
      const [direction = '', result = ''] = key.split(':')
      return { direction, result, total, lastMinute: minute.sync[key] ?? 0 }
    })
    return {
      generatedAt: new Date(this.now()).toISOString(),
      node: views.state,
      history: { intervalSeconds: this.opts.intervalSeconds, ...this.history.series() },
      lastMinute: { seconds: minute.seconds, full: minute.full, resumed: minute.resumed },
      cache: [level('l1', l1), level('l2', { entries: l2.entries, bytes: l2.bytes, hits: l2.hits, misses: l2.misses })],
      sync: { listen: views.peers.sync, packets, peers: views.peers.peers },
      tickets: this.tickets(),
      ...(haproxy !== undefined ? { haproxy } : {}),
      certificates: dashboardCertificates(views.certificates)
    }
  }

  /** SIGHUP read other farm secrets: show the new sending secret's schedule and how many are held. */
  setTickets (tickets: NonNullable<NodeDashboardOptions['tickets']>): void {
    if (this.ticketView !== undefined) this.ticketView = tickets
  }

  private tickets (): TicketsBody {
    const tickets = this.ticketView
    if (tickets === undefined) return { enabled: false }
    const { schedule } = tickets
    const now = this.now()
    const current = schedule.generation(schedule.epochAt(now))
    const next = schedule.epochStartMs(current.epoch + 1)
    return {
      enabled: true,
      farmWide: tickets.farmWide,
      farmSecrets: tickets.farmSecrets,
      rotationSeconds: schedule.rotationSeconds,
      generation: current.epoch,
      keyName: current.name.toString('hex'),
      since: new Date(schedule.epochStartMs(current.epoch)).toISOString(),
      nextRotation: new Date(next).toISOString(),
      secondsToNextRotation: Math.max(0, Math.round((next - now) / 1000)),
      acceptedGenerations: schedule.acceptable().map((g) => g.epoch)
    }
  }

  /** `direction:result` → packets (updates), from the sync service's counter (empty without sync). */
  private async syncCounters (): Promise<Record<string, number>> {
    const metric = this.opts.registry.getSingleMetric(SYNC_COUNTER)
    if (metric === undefined) return {}
    const out: Record<string, number> = {}
    for (const v of (await metric.get()).values) out[`${String(v.labels.direction)}:${String(v.labels.result)}`] = v.value
    return out
  }

  private async farmView (): Promise<FarmViewBody | undefined> {
    const coordinator = this.opts.coordinator
    if (coordinator === undefined) return undefined
    const now = this.now()
    if (this.haproxyView === undefined || now - this.haproxyView.at >= HAPROXY_VIEW_MS) {
      this.haproxyView = { at: now, view: backendView(coordinator) }
    }
    return await this.haproxyView.view
  }
}

/** Every server of the node's backend as HAProxy's `show stat` has it. Never throws. */
async function backendView (coordinator: HaproxyCoordinator): Promise<FarmViewBody> {
  const base = { socket: coordinator.api.target, backend: coordinator.backend }
  let rows: StatRow[]
  try {
    rows = await coordinator.api.showStat()
  } catch (err) {
    return { ...base, reachable: false, error: (err as Error).message, servers: [] }
  }
  const servers = rows.filter((r) => r.pxname === coordinator.backend && r.svname !== 'BACKEND' && r.svname !== 'FRONTEND')
  return {
    ...base,
    reachable: true,
    ...(rows.some((r) => r.pxname === coordinator.backend) ? {} : { error: `haproxy has no backend ${coordinator.backend} (show stat)` }),
    servers: servers.map((r) => ({
      name: r.svname,
      self: r.svname === coordinator.server,
      ...serverStatView(r),
      ...(r.addr !== undefined ? { address: r.addr } : {})
    }))
  }
}

/** Rows the dashboard's certificate table gets at most (polled every 2 s; --cert-dir may hold thousands). */
export const DASHBOARD_CERTIFICATES = 50

/**
 * At most DASHBOARD_CERTIFICATES of them, in load order: those that need the operator first
 * (their `attention`: a staple problem, then an expiry one, each the soonest to expire first),
 * so that none of those is left out; `omitted` says how many more GET /v1/certificates lists.
 */
export function dashboardCertificates (body: CertificatesBody, max = DASHBOARD_CERTIFICATES): CertificatesBody {
  if (body.certificates.length <= max) return body
  const rank = (c: CertificateBody): number => stapleAttention(c.attention) ? 0 : c.attention.length > 0 ? 1 : 2
  const urgent = body.certificates.map((c, i) => ({ c, i })).sort((a, b) => rank(a.c) - rank(b.c) || a.c.expiresInDays - b.c.expiresInDays || a.i - b.i)
  const kept = new Set(urgent.slice(0, max).map((x) => x.i))
  return { ...body, certificates: body.certificates.filter((_, i) => kept.has(i)), omitted: body.certificates.length - max }
}
