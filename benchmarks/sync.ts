import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { LabFarm } from '../src/lab/farm.js'
import { freeTcpPort } from '../src/util/free-port.js'
import { sumMetric } from '../src/metrics/prometheus-text.js'
import { tlsHandshake } from '../src/lab/tls-client.js'
import { LabError } from '../src/errors.js'
import { processTree } from '../src/lab/proc-cpu.js'
import { describeExit, waitForClose } from '../src/lab/child-waits.js'
import { spawnChild } from '../src/lab/processes.js'
import { onLines } from '../src/util/lines.js'
import { round } from './handshake.js'
import { percentile, pin } from './load.js'
import type { Progress } from './progress.js'
import { table } from './report.js'
import { DEFAULT_SYNC_CIPHER, SYNC_CIPHERS, type SyncCipher } from '../src/sync/sync-aead.js'

export interface SyncRateRow {
  /** The AEAD the sender sealed with (node2 opens both). */
  cipher: SyncCipher
  offeredPerSecond: number
  sent: number
  accepted: number
  lost: number
  sendSeconds: number
  /** UDP datagrams the updates travelled in (batches of sealed packets, as a busy peer sends). */
  datagrams: number
  /** CPU of the receiving node (primary and worker) per update, µs. */
  receiverCpuUsPerUpdate: number
}
export interface SyncReport {
  propagation: { samples: number; resumedFirstTry: number; neverResumed: number; p50Ms: number; p99Ms: number; maxMs: number }
  rate: SyncRateRow[]
  /** Highest offered rate with nothing lost, packets sealed with the default cipher. */
  sustainedPerSecond: number
  /** The same per cipher, side by side in one run. */
  sustainedByCipher: Record<SyncCipher, number>
}

/** Offered rates, updates/s. */
export const SYNC_RATES = [20_000, 50_000, 100_000, 120_000, 150_000]

/**
 * Two nodes with the farm sync on loopback.
 * Propagation: a TLS 1.2 full handshake on node1, then node2 is asked to resume that session at
 * once, again and again until it does; the delay is from the end of the first handshake to the
 * start of the attempt that resumed (0 when the first attempt did).
 * Rate: node2 pinned to the server CPUs; a sending process on the client CPUs sends sealed New
 * packets (the real v2 format, the farm key, 150-byte sessions) at a fixed rate for one second
 * each, in batch datagrams of up to 1400 bytes as a busy peer sends them; accepted vs sent, from
 * node2's tlsfleet_sync_packets_total, and node2's CPU per update. Every rate once per cipher
 * (the sender's --sync-cipher; node2 opens both), so the two are compared in one run.
 */
export async function runSyncSuite (opts: { progress: Progress; samples: number; cert?: string; rates?: number[]; serverCpus?: string; clientCpus?: string }): Promise<SyncReport> {
  const farm = new LabFarm({
    frontend: { host: '127.0.0.10', port: await freeTcpPort('127.0.0.10') },
    nodes: 2,
    sync: 'unicast',
    nodeArgs: ['--proxy-protocol-in', 'auto'],
    ...(opts.cert !== undefined ? { cert: opts.cert } : {})
  })
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

    // Rate: node2 alone on the server CPUs, the sender alone on the client CPUs.
    if (opts.serverCpus !== undefined && node2.pid !== undefined) for (const pid of processTree(node2.pid)) pin(pid, opts.serverCpus)
    const accepted = async (): Promise<number> => sumMetric(await node2.metricsText(), 'tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' })
    const rate: SyncRateRow[] = []
    for (const cipher of SYNC_CIPHERS) for (const perSecond of opts.rates ?? SYNC_RATES) {
      opts.progress.update(`sync rate ${perSecond}/s (${cipher}): sealing, then sending for 1 s`)
      const before = await accepted()
      let cpuBefore = node2.cpuSeconds()
      // The sender seals first: the receiver's CPU counts from the moment it starts sending.
      const sender = await runSender(path.join(farm.dir, 'farm.key'), node2.address, node2.ports.sync, perSecond, cipher, opts.clientCpus, () => { cpuBefore = node2.cpuSeconds() })
      await new Promise((resolve) => setTimeout(resolve, 500))
      const got = (await accepted()) - before
      const cpu = node2.cpuSeconds() - cpuBefore
      rate.push({ cipher, offeredPerSecond: perSecond, sent: sender.sent, accepted: got, lost: sender.sent - got, sendSeconds: round(sender.sendSeconds, 2), datagrams: sender.datagrams, receiverCpuUsPerUpdate: got > 0 ? round((cpu / got) * 1e6, 1) : 0 })
      opts.progress.line(`sync rate ${perSecond}/s (${cipher}): sent ${sender.sent} in ${sender.datagrams} datagrams in ${sender.sendSeconds.toFixed(2)} s, node2 accepted ${got}`)
    }
    const sustained = (cipher: SyncCipher): number => Math.max(0, ...rate.filter((r) => r.cipher === cipher && r.lost === 0).map((r) => r.offeredPerSecond))
    return {
      propagation: { samples: delays.length + never, resumedFirstTry: firstTry, neverResumed: never, p50Ms: round(percentile(delays, 50), 3), p99Ms: round(percentile(delays, 99), 3), maxMs: round(delays[delays.length - 1] ?? 0, 3) },
      rate,
      sustainedPerSecond: sustained(DEFAULT_SYNC_CIPHER),
      sustainedByCipher: Object.fromEntries(SYNC_CIPHERS.map((c) => [c, sustained(c)])) as Record<SyncCipher, number>
    }
  } finally {
    await farm.stop()
  }
}

const SENDER = fileURLToPath(new URL('./sync-sender.js', import.meta.url))

/** The sending peer, a process of its own (sync-sender.ts), pinned to the client CPUs. */
async function runSender (keyFile: string, host: string, port: number, count: number, cipher: SyncCipher, cpus: string | undefined, onSending: () => void): Promise<{ sent: number; datagrams: number; sendSeconds: number }> {
  const child = spawnChild(process.execPath, [SENDER, keyFile, host, String(port), String(count), cipher], cpus !== undefined ? { cpus } : {})
  let result = ''
  onLines(child.stdout, (line) => { if (line === 'sending') onSending(); else result = line })
  // It seals COUNT updates, then sends them over one second: a minute and a millisecond per
  // update is many times what any rate of the suite takes.
  const code = await waitForClose(child, { what: 'sync suite: the sending process', timeoutMs: 60_000 + count })
  if (code !== 0 || result === '') throw new LabError(`sync suite: the sending process ${describeExit(child)}`)
  return JSON.parse(result) as { sent: number; datagrams: number; sendSeconds: number }
}

export function syncTable (r: SyncReport): string {
  const p = r.propagation
  return [
    table(['samples', 'resumable on node2 at the first try', 'never', 'delay p50 ms', 'delay p99 ms', 'max ms'],
      [[p.samples, `${p.resumedFirstTry} (${p.samples > 0 ? ((p.resumedFirstTry / p.samples) * 100).toFixed(1) : 0}%)`, p.neverResumed, p.p50Ms, p.p99Ms, p.maxMs]]),
    '',
    table(['sealed with', 'offered New/s', 'sent', 'datagrams', 'accepted', 'lost', 'send time s', 'receiver CPU µs/update'], r.rate.map((x) => [x.cipher, x.offeredPerSecond, x.sent, x.datagrams, x.accepted, x.lost, x.sendSeconds, x.receiverCpuUsPerUpdate])),
    '',
    `sustained without loss: ${SYNC_CIPHERS.map((c) => `${r.sustainedByCipher[c]} New/s sealed with ${c}`).join(', ')}`
  ].join('\n')
}
