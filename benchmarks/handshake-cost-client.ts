/**
 * Run by the handshake-cost suite (handshake-cost.ts): one TLS connection after another to
 * 127.0.0.1:PORT, each sending a request and reading the answer, as the profile says (a full
 * handshake each time, or resuming the session or ticket the previous connection got).
 * WARM connections, then the line "warm" on stdout; at SIGUSR2 (the suite has zeroed the
 * server's counters), COUNT connections, then one JSON line {handshakes, resumed}.
 * Usage: node handshake-cost-client.js PORT PROFILE WARM COUNT
 */
import tls from 'node:tls'

const [portText = '0', profile = 'resume-1.2-ticket', warmText = '20', countText = '100'] = process.argv.slice(2)
const version: tls.SecureVersion = profile.endsWith('1.3') || profile.includes('-1.3-') ? 'TLSv1.3' : 'TLSv1.2'
const resume = profile.startsWith('resume-')
let session: Buffer | undefined

async function connectOnce (): Promise<boolean> {
  return await new Promise((resolve, reject) => {
    const socket = tls.connect({
      port: Number(portText), host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false,
      minVersion: version, maxVersion: version, ...(resume && session !== undefined ? { session } : {})
    })
    let reused = false
    socket.on('session', (s: Buffer) => { session = s })
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused()
      socket.write('GET / HTTP/1.1\r\nhost: localhost\r\n\r\n')
    })
    socket.on('data', () => {})
    socket.once('error', reject)
    socket.once('close', () => resolve(reused))
    socket.setTimeout(120_000, () => socket.destroy(new Error('handshake-cost client: no answer in 120 s')))
  })
}

async function run (count: number): Promise<number> {
  let resumed = 0
  for (let i = 0; i < count; i++) if (await connectOnce()) resumed++
  return resumed
}

await run(Number(warmText))
// A signal handler alone does not keep the process alive: the timer does, until the signal.
const waiting = setInterval(() => {}, 1000)
const go = new Promise((resolve) => process.once('SIGUSR2', resolve))
process.stdout.write('warm\n')
await go
clearInterval(waiting)
const count = Number(countText)
const resumed = await run(count)
process.stdout.write(JSON.stringify({ handshakes: count, resumed }) + '\n')
