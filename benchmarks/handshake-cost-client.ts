/**
 * Run by the handshake-cost suite (handshake-cost.ts): one TLS connection after another to
 * 127.0.0.1:PORT, each sending a request and reading the answer, as the profile says (a full
 * handshake each time, or resuming the session or ticket the previous connection got).
 * WARM connections, then the line "warm" on stdout; at SIGUSR2 (the suite has zeroed the
 * server's counters), COUNT connections, then one JSON line {handshakes, resumed}. The TLS 1.2
 * clients take tickets only in `resume-1.2-ticket`, as the time-based suite's clients do
 * (client-worker.ts): `full-1.2`'s sessions then go to the session-ID cache (L2 through the
 * primary) and `resume-1.2-id` resumes by ID alone; with `pp2`, each connection starts with a
 * PROXY v2 header, as behind HAProxy's send-proxy-v2.
 * Usage: node handshake-cost-client.js PORT PROFILE WARM COUNT [pp2]
 */
import { tlsHandshake } from '../src/lab/tls-client.js'
import { encodeProxyV2 } from '../src/proxy/proxy-protocol.js'

const [portText = '0', profile = 'resume-1.2-ticket', warmText = '20', countText = '100', mode = ''] = process.argv.slice(2)
const version = profile.endsWith('1.3') || profile.includes('-1.3-') ? '1.3' : '1.2'
const resume = profile.startsWith('resume-')
const tickets = version === '1.3' || profile === 'resume-1.2-ticket'
const proxyHeader = mode === 'pp2' ? encodeProxyV2({ address: '192.0.2.10', port: 40000 }, { address: '127.0.0.1', port: Number(portText) }) : undefined
let session: Buffer | undefined

/** One connection (the lab's client: handshake, a request, its answer read to the end); whether it resumed. */
async function connectOnce (): Promise<boolean> {
  const result = await tlsHandshake({
    host: '127.0.0.1', port: Number(portText), version, tickets, request: true, timeoutMs: 120_000,
    ...(resume && session !== undefined ? { session } : {}),
    ...(proxyHeader !== undefined ? { proxyHeader } : {})
  })
  if (!result.ok) throw new Error(`handshake-cost client: ${result.error ?? 'connection failed'}`)
  session = result.session ?? session
  return result.resumed
}

async function run (count: number): Promise<number> {
  let resumed = 0
  for (let i = 0; i < count; i++) if (await connectOnce()) resumed++
  return resumed
}

await run(Number(warmText))
// A signal handler alone does not keep the process alive: the timer does, until the signal. The
// wait is bounded: a suite that died without stopping this client must not leave it behind
// (the suite itself zeroes the counters in seconds).
const SIGNAL_BOUND_MS = 600_000
let waiting: NodeJS.Timeout | undefined
const go = new Promise<void>((resolve) => {
  process.once('SIGUSR2', () => resolve())
  waiting = setTimeout(() => {
    process.stderr.write(`handshake-cost client: no SIGUSR2 from the suite within ${SIGNAL_BOUND_MS / 1000} s after warming up\n`)
    process.exit(3)
  }, SIGNAL_BOUND_MS)
})
process.stdout.write('warm\n')
await go
clearTimeout(waiting)
const count = Number(countText)
const resumed = await run(count)
process.stdout.write(JSON.stringify({ handshakes: count, resumed }) + '\n')
