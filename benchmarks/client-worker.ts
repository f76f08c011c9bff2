/**
 * A bench client process (forked by load.ts). Runs `concurrency` connection loops against
 * one target; each loop first gets a session (priming, not measured), then waits for "go"
 * and makes connections until the shared count or the deadline is reached.
 * Messages to the parent: ready, progress {done, errors}, result.
 */
import { tlsHandshake, type HandshakeResult, type TlsVersion } from '../src/lab/tls-client.js'
import { encodeProxyV2 } from '../src/proxy/proxy-protocol.js'
import type { Profile } from './profiles.js'

export interface WorkerConfig {
  host: string
  port: number
  profile: Profile
  concurrency: number
  /** This process's share of the connection count. */
  count: number
  durationMs: number
  request: boolean
  /** Send a PROXY v2 header (a fixed client address) before each ClientHello. */
  proxyV2: boolean
}

export interface WorkerResult {
  handshakeMs: number[]
  ok: number
  errors: number
  resumed: number
  /** Connections that offered a session (should resume). */
  offered: number
  errorSamples: string[]
  elapsedMs: number
}

/** To the parent while the channel is open (a parent that died leaves nothing to tell). */
const send = (message: unknown): void => { if (process.connected) process.send?.(message) }

interface LoopState { session?: Buffer; version: TlsVersion; tickets: boolean; resume: boolean }

function loopState (profile: Profile, index: number): LoopState {
  if (profile.version === 'mixed') {
    const v13 = index % 2 === 1
    return { version: v13 ? '1.3' : '1.2', tickets: v13, resume: true }
  }
  return { version: profile.version, tickets: profile.resume === 'ticket' || profile.version === '1.3', resume: profile.resume !== 'none' }
}

async function main (config: WorkerConfig): Promise<void> {
  const loops = Array.from({ length: config.concurrency }, (_, i) => loopState(config.profile, i))
  const proxyHeader = config.proxyV2 ? encodeProxyV2({ address: '192.0.2.10', port: 40000 + process.pid % 20000 }, { address: config.host, port: config.port }) : undefined
  const connect = async (s: LoopState, offer: boolean): Promise<HandshakeResult> => await tlsHandshake({
    host: config.host,
    port: config.port,
    version: s.version,
    tickets: s.tickets,
    request: config.request,
    timeoutMs: 10_000,
    ...(proxyHeader !== undefined ? { proxyHeader } : {}),
    ...(offer && s.session !== undefined ? { session: s.session } : {})
  })
  // Priming: one full handshake per resuming loop, so the measured window holds only the profile.
  await Promise.all(loops.map(async (s) => {
    if (!s.resume) return
    for (let attempt = 0; attempt < 3 && s.session === undefined; attempt++) {
      const r = await connect(s, false)
      if (r.ok && r.session !== undefined) s.session = r.session
    }
  }))
  send({ t: 'ready' })
  await new Promise<void>((resolve) => process.once('message', () => resolve()))

  const result: WorkerResult = { handshakeMs: [], ok: 0, errors: 0, resumed: 0, offered: 0, errorSamples: [], elapsedMs: 0 }
  const started = performance.now()
  const deadline = started + config.durationMs
  let issued = 0
  const progress = setInterval(() => send({ t: 'progress', done: result.ok, errors: result.errors }), 250)
  await Promise.all(loops.map(async (s) => {
    while (issued < config.count && performance.now() < deadline) {
      issued++
      let offer = s.resume && s.session !== undefined
      if (config.profile.resume === 'mixed' && Math.random() < (config.profile.fullShare ?? 0.2)) offer = false
      const r = await connect(s, offer)
      if (!r.ok) {
        result.errors++
        if (result.errorSamples.length < 5 && r.error !== undefined) result.errorSamples.push(r.error)
        continue
      }
      result.ok++
      result.handshakeMs.push(r.handshakeMs)
      if (offer) result.offered++
      if (r.resumed) result.resumed++
      if (s.resume && r.session !== undefined) s.session = r.session
    }
  }))
  clearInterval(progress)
  result.elapsedMs = performance.now() - started
  // Disconnect only once the result is written: a long run's result is large (every latency),
  // and a disconnect right after send() could cut it off.
  await new Promise<void>((resolve) => {
    if (process.connected && process.send !== undefined) process.send({ t: 'result', result }, () => resolve())
    else resolve()
  })
}

const config = JSON.parse(process.env.TLSFLEET_BENCH_WORKER ?? 'null') as WorkerConfig | null
if (config === null) {
  process.stderr.write('client-worker: run by the bench, not by hand\n')
  process.exit(2)
}
main(config).then(() => { process.disconnect?.() }, (err: unknown) => {
  process.stderr.write(`client-worker: ${String(err)}\n`)
  process.exit(1)
})
