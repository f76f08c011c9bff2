import type { AgentReport } from './agent.js'
import type { FailoverRow } from './failover.js'
import type { HandshakeRow } from './handshake.js'
import type { MachineInfo } from './machine.js'
import type { MemoryRow } from './memory.js'
import type { SoakReport } from './soak.js'
import type { StoreReport } from './store.js'
import type { SyncReport } from './sync.js'
import type { SyncCostReport } from './sync-cost.js'
import type { HandshakeCostReport } from './handshake-cost.js'

/** What a bench run found, per suite: printed as tables, written with --out, drawn with --report. */
export interface BenchReport {
  machine: MachineInfo
  command: string
  settings: Record<string, unknown>
  handshake?: HandshakeRow[]
  handshakeCost?: HandshakeCostReport
  failover?: FailoverRow[]
  sync?: SyncReport
  syncCost?: SyncCostReport
  store?: StoreReport
  agent?: AgentReport
  memory?: MemoryRow[]
  soak?: SoakReport
  /** With --cpu-prof: tlsfleet's worker against the plain Node server, per certificate. */
  cpuProfiles?: Array<{ cert: string; target: string; table: string }>
  skipped: string[]
}
