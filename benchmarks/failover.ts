import { formatHostPort } from '../src/config/host-port.js'
import { LabFarm, type SyncMode, type TerminatorMode } from '../src/lab/farm.js'
import { freeTcpPort } from '../src/util/free-port.js'
import { CpuMeter } from '../src/lab/proc-cpu.js'
import { kindVersion, type ClientKind } from '../src/lab/returning-clients.js'
import { tlsHandshake, type HandshakeResult } from '../src/lab/tls-client.js'
import type { Progress } from './progress.js'
import { table } from './report.js'
import { round } from './handshake.js'

export interface FailoverRow {
  /** Who terminates TLS: tlsfleet, a local HAProxy per node, or mixed (node1, the one killed, HAProxy). */
  terminator: TerminatorMode
  sharing: 'shared' | 'off'
  kind: ClientKind
  /** Clients whose first connection HAProxy sent to node1. */
  clientsOfKilledNode: number
  reconnected: number
  resumed: number
  failed: number
  /** resumed / reconnected. */
  resumedShare: number
  /** node2 + node3 CPU while node1's clients came back, per reconnection (µs). */
  survivorsCpuUsPerReconnect: number
  survivorsCpuSeconds: number
  /** Subtracted background over an idle window of the same length. */
  survivorsIdleCpuSeconds: number
}

/** One farm the suite measures: who terminates TLS, whether sessions are shared, which clients. */
export interface FailoverFarm { terminator: TerminatorMode; sync: SyncMode; kinds: ClientKind[] }

/**
 * tlsfleet nodes with and without sharing (TLS 1.2 session IDs and TLS 1.3 tickets), then HAProxy
 * nodes with tlsfleet's farm keys, the same HAProxy nodes with independent keys (each its own
 * secret: HAProxy farms without a companion), and a mixed farm. HAProxy cannot take shared TLS
 * 1.2 session IDs, so those farms are measured with ticket clients (TLS 1.2 and 1.3).
 */
export const FAILOVER_FARMS: readonly FailoverFarm[] = [
  { terminator: 'tlsfleet', sync: 'unicast', kinds: ['tls12-id', 'tls13-ticket'] },
  { terminator: 'tlsfleet', sync: 'off', kinds: ['tls12-id', 'tls13-ticket'] },
  { terminator: 'haproxy', sync: 'unicast', kinds: ['tls12-ticket', 'tls13-ticket'] },
  { terminator: 'haproxy', sync: 'off', kinds: ['tls12-ticket', 'tls13-ticket'] },
  { terminator: 'mixed', sync: 'unicast', kinds: ['tls12-ticket', 'tls13-ticket'] }
]

async function pool<T> (items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await fn(items[next++] as T)
  }))
}

/**
 * The headline: a 3-node farm behind HAProxy; `clients` clients connect once each (a full
 * handshake) and keep their session; node1 is killed (SIGKILL, with its local HAProxy when it
 * has one) and, once HAProxy has marked it DOWN, node1's clients come back. Shared sessions
 * (farm sync and farm ticket keys) vs the same farm with sharing off (each node its own cache
 * and ticket keys: the state of the art without a shared cache), for each farm of `farms`.
 */
export async function runFailoverSuite (opts: { progress: Progress; cert?: string; clients: number; kinds?: ClientKind[]; farms?: readonly FailoverFarm[] }): Promise<FailoverRow[]> {
  const rows: FailoverRow[] = []
  for (const { terminator, sync, kinds } of opts.farms ?? FAILOVER_FARMS) {
    for (const kind of opts.kinds ?? kinds) {
      const frontend = { host: '127.0.0.10', port: await freeTcpPort('127.0.0.10') }
      const served = new Map<number, string>()
      const farm = new LabFarm({
        frontend,
        sync,
        terminator,
        ...(opts.cert !== undefined ? { cert: opts.cert } : {}),
        onHaproxyLine: (line) => {
          const m = /^LAB (\d+) (?:\S+\/)?(\S+)/.exec(line)
          if (m !== null) served.set(Number(m[1]), m[2] as string)
        }
      })
      await farm.start()
      try {
        const connect = async (session?: Buffer): Promise<HandshakeResult> => await tlsHandshake({
          host: frontend.host, port: frontend.port, version: kindVersion(kind), tickets: kind !== 'tls12-id', request: true, timeoutMs: 5000, ...(session !== undefined ? { session } : {})
        })
        const first: Array<{ session?: Buffer; port?: number }> = Array.from({ length: opts.clients }, () => ({}))
        await pool(first, 8, async (c) => {
          const r = await connect()
          if (r.ok && r.session !== undefined) c.session = r.session
          if (r.localPort !== undefined) c.port = r.localPort
        })
        await new Promise((resolve) => setTimeout(resolve, 500)) // the last HAProxy log lines
        const ofNode1 = first.filter((c) => c.session !== undefined && c.port !== undefined && served.get(c.port) === 'node1')
        opts.progress.line(`failover ${terminator} ${sync === 'off' ? 'sharing off' : 'shared'} ${kind}: ${first.length} clients, ${ofNode1.length} on node1; killing node1`)
        await farm.node('node1').kill()
        await waitDown(farm, 'node1')
        const survivors = farm.nodes.filter((n) => n.name !== 'node1')
        const pids = (): number[] => survivors.flatMap((n) => n.cpuRoots())
        const meter = new CpuMeter(pids)
        const phaseStart = performance.now()
        let resumed = 0
        let failed = 0
        let reconnected = 0
        await pool(ofNode1, 8, async (c) => {
          const r = await connect(c.session)
          if (!r.ok) { failed++; return }
          reconnected++
          if (r.resumed) resumed++
        })
        const busy = meter.read()
        // The survivors' background (health checks, agent, metrics) over an idle window as long
        // as the reconnection phase, subtracted so what remains is the reconnections' cost.
        const phaseMs = performance.now() - phaseStart
        const idleMeter = new CpuMeter(pids)
        await new Promise((resolve) => setTimeout(resolve, phaseMs))
        const idle = idleMeter.read()
        const cpu = Math.max(0, busy - idle)
        rows.push({
          terminator,
          sharing: sync === 'off' ? 'off' : 'shared',
          kind,
          clientsOfKilledNode: ofNode1.length,
          reconnected,
          resumed,
          failed,
          resumedShare: reconnected > 0 ? round(resumed / reconnected, 4) : 0,
          survivorsCpuUsPerReconnect: reconnected > 0 ? round((cpu / reconnected) * 1e6, 0) : 0,
          survivorsCpuSeconds: round(cpu, 3),
          survivorsIdleCpuSeconds: round(idle, 3)
        })
        opts.progress.line(`  ${reconnected} reconnected via ${formatHostPort(frontend)}: ${resumed} resumed, ${failed} failed; survivors' CPU ${rows[rows.length - 1]?.survivorsCpuUsPerReconnect} µs per reconnect`)
      } finally {
        await farm.stop()
      }
    }
  }
  return rows
}

async function waitDown (farm: LabFarm, name: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    const rows = await farm.serverStats().catch(() => [])
    const row = rows.find((r) => r.svname === name)
    if (row !== undefined && !row.status.startsWith('UP')) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** How the row's farm shares sessions, in words. */
function sharingLabel (r: FailoverRow): string {
  if (r.terminator === 'tlsfleet') return r.sharing === 'shared' ? 'shared (tlsfleet sync)' : 'not shared'
  return r.sharing === 'shared' ? 'farm ticket keys (tlsfleet)' : 'independent keys'
}

const TERMINATOR_LABELS: Record<TerminatorMode, string> = { tlsfleet: 'tlsfleet', haproxy: 'haproxy', mixed: 'mixed (node1 haproxy)' }

export function failoverTable (rows: FailoverRow[]): string {
  return table(
    ['TLS by', 'sessions', 'clients', 'clients of node1', 'reconnected', 'resumed', 'failed', 'resumed share', 'survivors CPU µs / reconnect'],
    rows.map((r) => [TERMINATOR_LABELS[r.terminator], sharingLabel(r), r.kind, r.clientsOfKilledNode, r.reconnected, r.resumed, r.failed, `${(r.resumedShare * 100).toFixed(1)}%`, r.survivorsCpuUsPerReconnect])
  )
}
