import crypto from 'node:crypto'
import dgram from 'node:dgram'
import path from 'node:path'
import { LabFarm } from '../src/lab/farm.js'
import { freeTcpPort } from '../src/util/free-port.js'
import { sumMetric } from '../src/metrics/prometheus-text.js'
import { tlsHandshake } from '../src/lab/tls-client.js'
import { FarmKeyRing } from '../src/sync/farm-keys.js'
import { loadFarmSecrets } from '../src/sync/farm-secret.js'
import { createSequenceCounter, encodeV2 } from '../src/sync/wire-v2.js'
import { round } from './handshake.js'
import { percentile } from './load.js'
import type { Progress } from './progress.js'
import { table } from './report.js'

export interface SyncRateRow { offeredPerSecond: number; sent: number; accepted: number; lost: number; sendSeconds: number }
export interface SyncReport {
  propagation: { samples: number; resumedFirstTry: number; neverResumed: number; p50Ms: number; p99Ms: number; maxMs: number }
  rate: SyncRateRow[]
  /** Highest offered rate with nothing lost. */
  sustainedPerSecond: number
}

/**
 * Two nodes with the farm sync on loopback.
 * Propagation: a TLS 1.2 full handshake on node1, then node2 is asked to resume that session at
 * once, again and again until it does; the delay is from the end of the first handshake to the
 * start of the attempt that resumed (0 when the first attempt did).
 * Rate: sealed New packets (the real v2 format, the farm key) sent to node2 at a fixed rate for
 * one second each; accepted vs sent, from node2's tlsfleet_sync_packets_total.
 */
export async function runSyncSuite (opts: { progress: Progress; samples: number; cert?: string; rates?: number[] }): Promise<SyncReport> {
  const farm = new LabFarm({ frontend: { host: '127.0.0.10', port: await freeTcpPort('127.0.0.10') }, nodes: 2, sync: 'unicast', nodeArgs: ['--proxy-protocol-in', 'auto'], ...(opts.cert !== undefined ? { cert: opts.cert } : {}) })
  await farm.start()
  try {
    const [node1, node2] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0]]
    const delays: number[] = []
    let firstTry = 0
    let never = 0
    for (let i = 0; i < opts.samples; i++) {
      const full = await tlsHandshake({ ...node1.tls, version: '1.2', tickets: false, timeoutMs: 5000 })
      if (!full.ok || full.session === undefined) continue
      const t0 = performance.now()
      let done = false
      for (let attempt = 0; attempt < 200 && performance.now() - t0 < 2000; attempt++) {
        const start = performance.now()
        const r = await tlsHandshake({ ...node2.tls, version: '1.2', tickets: false, session: full.session, timeoutMs: 5000 })
        if (r.resumed) {
          delays.push(attempt === 0 ? 0 : start - t0)
          if (attempt === 0) firstTry++
          done = true
          break
        }
      }
      if (!done) never++
      if (i % 20 === 0) opts.progress.update(`sync propagation: ${i + 1}/${opts.samples}`)
    }
    delays.sort((a, b) => a - b)

    const [secret] = loadFarmSecrets([path.join(farm.dir, 'farm.key')])
    const ctx = { keyRing: new FarmKeyRing([secret as NonNullable<typeof secret>]), nodeId: crypto.randomBytes(8), nextSequence: createSequenceCounter() }
    const socket = dgram.createSocket('udp4')
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
    const accepted = async (): Promise<number> => sumMetric(await node2.metricsText(), 'tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' })
    const rate: SyncRateRow[] = []
    for (const perSecond of opts.rates ?? [2000, 5000, 10_000, 20_000, 40_000, 80_000]) {
      // Sealed beforehand, in sequence order, so the timed second only sends.
      const der = crypto.randomBytes(150)
      const createdAt = Math.floor(Date.now() / 1000)
      const packets = Array.from({ length: perSecond }, () => encodeV2({ op: 'new', sessionId: crypto.randomBytes(32), session: der, createdAt }, ctx))
      const before = await accepted()
      const started = performance.now()
      let sent = 0
      for (let tick = 0; tick < 100; tick++) {
        const batchEnd = Math.round(((tick + 1) / 100) * perSecond)
        for (; sent < batchEnd; sent++) socket.send(packets[sent] as Buffer, node2.ports.sync, node2.address)
        const wait = started + (tick + 1) * 10 - performance.now()
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)))
      }
      const sendSeconds = (performance.now() - started) / 1000
      await new Promise((resolve) => setTimeout(resolve, 500))
      const got = (await accepted()) - before
      rate.push({ offeredPerSecond: perSecond, sent, accepted: got, lost: sent - got, sendSeconds: round(sendSeconds, 2) })
      opts.progress.line(`sync rate ${perSecond}/s: sent ${sent} in ${sendSeconds.toFixed(2)} s, node2 accepted ${got}`)
    }
    socket.close()
    const lossless = rate.filter((r) => r.lost === 0).map((r) => r.offeredPerSecond)
    return {
      propagation: { samples: delays.length + never, resumedFirstTry: firstTry, neverResumed: never, p50Ms: round(percentile(delays, 50), 3), p99Ms: round(percentile(delays, 99), 3), maxMs: round(delays[delays.length - 1] ?? 0, 3) },
      rate,
      sustainedPerSecond: lossless.length > 0 ? Math.max(...lossless) : 0
    }
  } finally {
    await farm.stop()
  }
}

export function syncTable (r: SyncReport): string {
  const p = r.propagation
  return [
    table(['samples', 'resumable on node2 at the first try', 'never', 'delay p50 ms', 'delay p99 ms', 'max ms'],
      [[p.samples, `${p.resumedFirstTry} (${p.samples > 0 ? ((p.resumedFirstTry / p.samples) * 100).toFixed(1) : 0}%)`, p.neverResumed, p.p50Ms, p.p99Ms, p.maxMs]]),
    '',
    table(['offered New/s', 'sent', 'accepted', 'lost', 'send time s'], r.rate.map((x) => [x.offeredPerSecond, x.sent, x.accepted, x.lost, x.sendSeconds])),
    '',
    `sustained without loss: ${r.sustainedPerSecond} New/s`
  ].join('\n')
}
