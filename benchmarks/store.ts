import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { LabFarm } from '../src/lab/farm.js'
import { RedisServer } from '../src/lab/redis-server.js'
import { tlsHandshake } from '../src/lab/tls-client.js'
import { parseStoreUrl, type StoreTarget } from '../src/config/store-url.js'
import { createRedisClient } from '../src/store/redis-client.js'
import { SessionSealer } from '../src/store/sealed-session.js'
import { MAX_VALUE_BYTES } from '../src/store/shared-session-store.js'
import { FarmKeyRing } from '../src/sync/farm-keys.js'
import { loadFarmSecrets, writeFarmSecretFile } from '../src/sync/farm-secret.js'
import { encodedLengthV2 } from '../src/sync/wire-v2.js'
import { sumMetric } from '../src/metrics/prometheus-text.js'
import { LOOKUP_RESULTS } from '../src/store/store-metrics.js'
import { freeTcpPort } from '../src/util/free-port.js'
import { round } from './handshake.js'
import { percentile } from './load.js'
import type { Progress } from './progress.js'
import { table } from './report.js'

export interface StoreReport {
  /** Sessions made on node1 and offered at once to node2, which has only the store to find them in. */
  crossNode: { samples: number; resumed: number; resumedShare: number; node2Lookups: Record<string, number> }
  /** Client-side handshake time on node2, side by side: full, resumed through the store (L1 and L2 empty), resumed from node2's own L1. */
  handshakeMs: { full: { p50: number; p99: number }; storeResume: { p50: number; p99: number }; l1Resume: { p50: number; p99: number } }
  /** One GET + unseal at a time, as a lookup after an L2 miss does, from one client. */
  lookupUs: { samples: number; p50: number; p99: number; max: number }
  /** Sealed SETs issued in bursts (auto-pipelined), one client. */
  writes: { sets: number; seconds: number; perSecond: number }
  /** Sizes of a real TLS 1.2 session: its DER, the sealed value in the store, the sync v2 New datagram, and the store's memory per key (INFO memory over the SET burst). */
  bytes: { der: number; storeValue: number; syncPacket: number; storeMemoryPerKey: number }
}

const stats = (xs: number[]): { p50: number; p99: number } => {
  const sorted = [...xs].sort((a, b) => a - b)
  return { p50: round(percentile(sorted, 50), 3), p99: round(percentile(sorted, 99), 3) }
}

/**
 * Two nodes sharing sessions through a real redis-server on loopback, no UDP sync.
 * Cross-node: a TLS 1.2 session-ID session made on node1 is offered to node2 right away; node2
 * can only find it in the store. Then the same session again on node2 (now in its L1), and a
 * full handshake, for the side-by-side handshake times. Lookups and writes: the node's own
 * client code (ioredis, the sealer) against the same server, from the bench process.
 */
export async function runStoreSuite (opts: { progress: Progress; samples: number; cert?: string }): Promise<StoreReport> {
  const redis = await RedisServer.start()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-bench-store-'))
  const secretFile = writeFarmSecretFile(path.join(dir, 'farm.key'))
  const farm = new LabFarm({
    frontend: { host: '127.0.0.10', port: await freeTcpPort('127.0.0.10') },
    nodes: 2,
    sync: 'off',
    nodeArgs: ['--proxy-protocol-in', 'auto', '--session-store', redis.url, '--sync-secret-file', secretFile],
    ...(opts.cert !== undefined ? { cert: opts.cert } : {})
  })
  try {
    await farm.start()
    const [node1, node2] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0]]
    const full: number[] = []
    const viaStore: number[] = []
    const fromL1: number[] = []
    let resumed = 0
    let samples = 0
    for (let i = 0; i < opts.samples; i++) {
      const made = await tlsHandshake({ ...node1.tls, version: '1.2', tickets: false, timeoutMs: 5000 })
      if (!made.ok || made.session === undefined) continue
      full.push(made.handshakeMs)
      await new Promise((resolve) => setTimeout(resolve, 2)) // the New leaves node1 after the handshake
      samples++
      const first = await tlsHandshake({ ...node2.tls, version: '1.2', tickets: false, session: made.session, timeoutMs: 5000 })
      if (!first.resumed) continue
      resumed++
      viaStore.push(first.handshakeMs)
      const again = await tlsHandshake({ ...node2.tls, version: '1.2', tickets: false, session: made.session, timeoutMs: 5000 })
      if (again.resumed) fromL1.push(again.handshakeMs)
      if (i % 20 === 0) opts.progress.update(`store cross-node: ${i + 1}/${opts.samples}`)
    }

    // Why a first try did not resume: the store's answers on node2, by result.
    const text = await node2.metricsText()
    const node2Lookups = Object.fromEntries(LOOKUP_RESULTS.map((result) => [result, sumMetric(text, 'tlsfleet_session_store_lookups_total', { result })]))
    const target = parseStoreUrl(redis.url) as StoreTarget
    const client = createRedisClient(target, { commandTimeoutMs: 1000, onError: () => {}, onRefused: () => {} })
    try {
      await client.ready(2000)
      const [secret] = loadFarmSecrets([secretFile])
      const sealer = new SessionSealer(new FarmKeyRing([secret as NonNullable<typeof secret>]))
      const keys = redis.cli(['--scan', '--pattern', 'tlsfleet:session:*']).toString().trim().split('\n').filter((k) => k !== '')
      const lookups: number[] = []
      let der = 0
      let storeValue = 0
      for (let i = 0; i < Math.min(2000, keys.length * 10) && keys.length > 0; i++) {
        const key = keys[i % keys.length] as string
        const id = Buffer.from(key.split(':').pop() as string, 'hex')
        const started = performance.now()
        const value = await client.get(key, MAX_VALUE_BYTES)
        const opened = value !== null ? sealer.open(id, value) : undefined
        lookups.push((performance.now() - started) * 1000)
        if (opened?.ok === true && value !== null) { der = opened.entry.der.length; storeValue = value.length }
      }
      lookups.sort((a, b) => a - b)
      const template = { createdAt: Math.floor(Date.now() / 1000), der: Buffer.alloc(der || 100) }
      const sets = 20_000
      const usedMemory = (): number => Number(/used_memory:(\d+)/.exec(redis.cli(['INFO', 'memory']).toString())?.[1] ?? 0)
      const memoryBefore = usedMemory()
      const started = performance.now()
      for (let i = 0; i < sets; i += 500) {
        const burst: Array<Promise<void>> = []
        for (let j = i; j < i + 500; j++) {
          const id = Buffer.alloc(32)
          id.writeUInt32BE(j)
          burst.push(client.set(`tlsfleet-bench:session:${id.toString('hex')}`, sealer.seal(id, template), 60_000))
        }
        await Promise.all(burst)
      }
      const seconds = (performance.now() - started) / 1000
      const memoryPerKey = Math.round((usedMemory() - memoryBefore) / sets)
      opts.progress.line(`store: ${resumed}/${samples} resumed on node2 through the store; lookup p50 ${round(percentile(lookups, 50), 1)} µs; ${Math.round(sets / seconds)} SET/s`)
      return {
        crossNode: { samples, resumed, resumedShare: round(resumed / Math.max(1, samples), 3), node2Lookups },
        handshakeMs: { full: stats(full), storeResume: stats(viaStore), l1Resume: stats(fromL1) },
        lookupUs: { samples: lookups.length, p50: round(percentile(lookups, 50), 1), p99: round(percentile(lookups, 99), 1), max: round(lookups[lookups.length - 1] ?? 0, 1) },
        writes: { sets, seconds: round(seconds, 3), perSecond: Math.round(sets / seconds) },
        bytes: { der, storeValue, syncPacket: encodedLengthV2({ op: 'new', sessionId: Buffer.alloc(32), session: Buffer.alloc(der), createdAt: 0 }), storeMemoryPerKey: memoryPerKey }
      }
    } finally {
      await client.close()
    }
  } finally {
    await farm.stop()
    await redis.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

export function storeTable (r: StoreReport): string {
  const h = r.handshakeMs
  return [
    table(['sessions made on node1', 'resumed on node2 at the first try (store only)', 'share', 'node2 store lookups'], [[r.crossNode.samples, r.crossNode.resumed, `${(r.crossNode.resumedShare * 100).toFixed(1)}%`, Object.entries(r.crossNode.node2Lookups).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ')]]),
    '',
    table(['handshake on node2', 'p50 ms', 'p99 ms', 'p50 vs full'], [
      ['full (node1)', h.full.p50, h.full.p99, '1.00x'],
      ['resumed through the store', h.storeResume.p50, h.storeResume.p99, `${(h.storeResume.p50 / h.full.p50).toFixed(2)}x`],
      ['resumed from its own L1', h.l1Resume.p50, h.l1Resume.p99, `${(h.l1Resume.p50 / h.full.p50).toFixed(2)}x`]
    ]),
    '',
    table(['store lookups (GET + unseal)', 'p50 µs', 'p99 µs', 'max µs'], [[r.lookupUs.samples, r.lookupUs.p50, r.lookupUs.p99, r.lookupUs.max]]),
    '',
    table(['sealed SETs (pipelined)', 'seconds', 'SET/s'], [[r.writes.sets, r.writes.seconds, r.writes.perSecond]]),
    '',
    table(['session DER bytes', 'store value bytes', 'store memory per session bytes', 'sync v2 New datagram bytes'], [[r.bytes.der, r.bytes.storeValue, r.bytes.storeMemoryPerKey, r.bytes.syncPacket]])
  ].join('\n')
}
