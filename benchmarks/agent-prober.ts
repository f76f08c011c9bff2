/**
 * Run by the agent suite (agent.ts) in a process of its own, pinned to a CPU the load does not
 * use, so what it measures is the answer time, not its own wait for a CPU. Every INTERVAL_MS it
 * makes one exchange with each probe in turn (a round; each round starts one probe further),
 * each on a new connection, until SAMPLES rounds or until SIGTERM, after 5 rounds it does not
 * record (warm-up). A probe is `http:PORT` (a
 * `GET /health`, as a health checker does) or `line:PORT` (an agent-check: connect, send
 * "hello\n", read a line, as HAProxy does). Plain sockets: no HTTP client library between the
 * clock and the wire.
 * Usage: node agent-prober.js INTERVAL_MS SAMPLES PROBE...
 * → one JSON line {samples: (ms|null)[][]}, one list per probe in the order given (null = failed
 * or over 2 s).
 */
import net from 'node:net'

const [intervalText = '20', samplesText = '100', ...probeArgs] = process.argv.slice(2)
const intervalMs = Number(intervalText)
const samples = Number(samplesText)

/** One exchange: connect, write `request`, read until `done(received)`; ms, or null. */
async function exchange (port: number, request: string, done: (received: string) => boolean): Promise<number | null> {
  const start = performance.now()
  return await new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    let received = ''
    const finish = (value: number | null): void => { clearTimeout(timer); socket.destroy(); resolve(value) }
    const timer = setTimeout(() => finish(null), 2000)
    socket.on('connect', () => socket.write(request))
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1')
      if (done(received)) finish(performance.now() - start)
    })
    socket.on('end', () => finish(done(received) ? performance.now() - start : null))
    socket.on('error', () => finish(null))
  })
}

const HEALTH_REQUEST = 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'
const healthAnswered = (r: string): boolean => /^HTTP\/1\.1 (200|503)/.test(r) && r.includes('\r\n\r\n') && bodyComplete(r)

/** The response is complete once content-length bytes follow the header. */
function bodyComplete (response: string): boolean {
  const head = response.indexOf('\r\n\r\n')
  const length = /content-length: *(\d+)/i.exec(response.slice(0, head))
  return length === null || response.length - head - 4 >= Number(length[1])
}

const probes = probeArgs.map((arg) => {
  const [kind, port] = arg.split(':')
  if (kind === 'http') return async () => await exchange(Number(port), HEALTH_REQUEST, healthAnswered)
  if (kind === 'line') return async () => await exchange(Number(port), 'hello\n', (r) => r.includes('\n'))
  throw new Error(`agent-prober: unknown probe ${JSON.stringify(arg)} (http:PORT or line:PORT)`)
})

let stop = false
process.on('SIGTERM', () => { stop = true })
const result: { samples: Array<Array<number | null>> } = { samples: probes.map(() => []) }
// Not recorded: the first exchanges compile the code paths on both sides.
for (let i = 0; i < 5 && !stop; i++) for (const probe of probes) await probe()
// Each round starts one probe further: after the pause, the first exchange may also pay the
// server CPU's wake-up from idle, and no responder should always be the one that pays it.
for (let round = 0; !stop && (result.samples[0]?.length ?? samples) < samples; round++) {
  for (let k = 0; k < probes.length; k++) {
    const i = (round + k) % probes.length
    result.samples[i]?.push(await (probes[i] as () => Promise<number | null>)())
  }
  await new Promise((resolve) => setTimeout(resolve, intervalMs))
}
process.stdout.write(JSON.stringify(result) + '\n')
process.exit(0)
