import assert from 'node:assert/strict'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { startFarm } from '../helpers/farm.js'

// Two nodes with a 2-second ticket key rotation, so the test can cross rotations quickly.
const ROTATION_S = 2
let farm: Awaited<ReturnType<typeof startFarm>>

before(async () => {
  farm = await startFarm(['127.0.0.1', '127.0.0.2'], {
    sync: (i, ports) => ['--sync-listen', `127.0.0.${i + 1}:${ports[i] as number}`, '--sync-peer', `127.0.0.${2 - i}:${ports[1 - i] as number}`],
    extra: ['--ticket-rotation', String(ROTATION_S), '--session-timeout', '60']
  })
})

after(async () => { await farm?.stop() })

async function connect (host: string, port: number, session?: Buffer): Promise<{ reused: boolean; session: Buffer; ticketName: string }> {
  return await new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, servername: 'localhost', rejectUnauthorized: false, minVersion: 'TLSv1.3', ...(session !== undefined ? { session } : {}) })
    let received: Buffer | undefined
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no TLS handshake with ${host}:${port} within 10 s`)) }, 10_000)
    socket.on('session', (s: Buffer) => { received ??= s })
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
    socket.once('secureConnect', () => {
      clearTimeout(timer)
      setTimeout(() => {
        const reused = socket.isSessionReused()
        const ticket = socket.getTLSTicket()
        socket.destroy()
        const current = received ?? session
        if (current === undefined) { reject(new Error('no session')); return }
        resolve({ reused, session: current, ticketName: ticket?.subarray(0, 16).toString('hex') ?? '' })
      }, 150)
    })
  })
}

/** Wait until just after the next rotation boundary of the shared schedule. */
async function crossRotation (): Promise<void> {
  const period = ROTATION_S * 1000
  await new Promise((resolve) => setTimeout(resolve, period - (Date.now() % period) + 150))
}

test('a TLS 1.3 ticket issued just before a key rotation still resumes after it, on every node', async () => {
  const [n1, n2] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0]]
  // Issue the ticket late in a rotation period, so the rotation comes right after it.
  const period = ROTATION_S * 1000
  const untilLate = (period - (Date.now() % period)) - 400
  if (untilLate > 0) await new Promise((resolve) => setTimeout(resolve, untilLate))
  const first = await connect(n1.host, n1.port)
  assert.equal(first.reused, false)
  await crossRotation()
  // A client arriving now gets a ticket under the new key: the rotation really happened.
  const fresh = await connect(n2.host, n2.port)
  assert.notEqual(fresh.ticketName, first.ticketName, 'ticket key name did not change across the rotation')
  // The returning client still resumes, on the node that issued the ticket and on the other.
  assert.equal((await connect(n2.host, n2.port, first.session)).reused, true, 'old ticket refused on node 2 after rotation')
  assert.equal((await connect(n1.host, n1.port, first.session)).reused, true, 'old ticket refused on node 1 after rotation')
  // And one rotation later it is still within its lifetime (session-timeout 60 s).
  await crossRotation()
  assert.equal((await connect(n1.host, n1.port, first.session)).reused, true, 'old ticket refused two rotations later')
})
