/**
 * Run by the agent suite (agent.ts) in a process of its own, pinned to a CPU the load does not
 * use, so what it measures is the node's answer time, not its own wait for a CPU. Every
 * INTERVAL_MS it makes one `GET /health` (a new connection, as a health checker does) and one
 * agent-check (connect, send "hello\n", read a line, as HAProxy does), until SAMPLES pairs or
 * until SIGTERM, after 5 pairs it does not record (warm-up). Plain sockets: no HTTP client library between the clock and the wire.
 * Usage: node agent-prober.js ADMIN_PORT AGENT_PORT INTERVAL_MS SAMPLES
 * → one JSON line {health: (ms|null)[], agent: (ms|null)[]} (null = failed or over 2 s).
 */
import net from 'node:net'

const [adminPort = '0', agentPort = '0', intervalText = '20', samplesText = '100'] = process.argv.slice(2)
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

const health = async (): Promise<number | null> => await exchange(Number(adminPort), 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
  (r) => /^HTTP\/1\.1 (200|503)/.test(r) && r.includes('\r\n\r\n') && bodyComplete(r))
const agent = async (): Promise<number | null> => await exchange(Number(agentPort), 'hello\n', (r) => r.includes('\n'))

/** The response is complete once content-length bytes follow the header. */
function bodyComplete (response: string): boolean {
  const head = response.indexOf('\r\n\r\n')
  const length = /content-length: *(\d+)/i.exec(response.slice(0, head))
  return length === null || response.length - head - 4 >= Number(length[1])
}

let stop = false
process.on('SIGTERM', () => { stop = true })
const result: { health: Array<number | null>; agent: Array<number | null> } = { health: [], agent: [] }
// Not recorded: the first requests compile the code paths on both sides.
for (let i = 0; i < 5 && !stop; i++) { await health(); await agent() }
while (!stop && result.health.length < samples) {
  result.health.push(await health())
  result.agent.push(await agent())
  await new Promise((resolve) => setTimeout(resolve, intervalMs))
}
process.stdout.write(JSON.stringify(result) + '\n')
process.exit(0)
