/** What the suites of one bench run were given, as the report's `settings` line shows it. */
export interface SettingsInput {
  suites: string[]
  certs: string[]
  /** Handshake suite. */
  targets: string[]
  profiles: string[]
  durationSeconds: number
  count: number
  processes: number
  concurrency: number
  rounds: number
  warmupSeconds: number
  workers: number
  request: boolean
  /** Handshake-cost suite. */
  costTargets: string[]
  costProfiles: string[]
  costCount: number
  costWarmup: number
  /** Sync-cost, memory and soak suites. */
  syncCostUpdates: number
  syncCostRefused: number
  sessions: number
  soakSeconds: number
  soakRssMb: number
}

/**
 * Only what the suites that ran read: a sync-cost run's line names no handshake targets or
 * profiles, so a reader of a report (or of the docs' tables) is not sent looking for settings
 * that had no effect. Keys keep one order, whichever suites ask for them.
 */
export function benchSettings (s: SettingsInput): Record<string, unknown> {
  const ran = new Set(s.suites)
  const any = (...names: string[]): boolean => names.some((n) => ran.has(n))
  const out: Record<string, unknown> = { suites: s.suites }
  // Every suite but memory and sync-cost makes TLS handshakes (handshake-cost with the first certificate, the others with RSA when listed).
  if (s.suites.some((n) => n !== 'memory' && n !== 'sync-cost')) out.certs = s.certs
  if (ran.has('handshake')) Object.assign(out, { targets: s.targets, profiles: s.profiles, rounds: s.rounds, warmupSeconds: s.warmupSeconds, request: s.request })
  if (any('handshake', 'agent', 'soak')) Object.assign(out, { workers: s.workers, processes: s.processes, concurrency: s.concurrency })
  if (any('handshake', 'agent')) out.durationSeconds = s.durationSeconds
  // --count bounds the handshake suite's connections and the sample counts of failover (300 at most), sync and store (200).
  if (any('handshake', 'failover', 'sync', 'store')) out.count = s.count
  if (ran.has('handshake-cost')) Object.assign(out, { costTargets: s.costTargets, costProfiles: s.costProfiles, costCount: s.costCount, costWarmup: s.costWarmup })
  if (ran.has('sync-cost')) Object.assign(out, { syncCostUpdates: s.syncCostUpdates, syncCostRefused: s.syncCostRefused })
  if (ran.has('memory')) out.sessions = s.sessions
  if (ran.has('soak')) Object.assign(out, { soakSeconds: s.soakSeconds, soakRssMb: s.soakRssMb })
  return out
}
