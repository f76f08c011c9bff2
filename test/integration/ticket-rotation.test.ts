import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'
import { loadFarmSecrets } from '../../src/sync/farm-secret.js'
import { farmTicketSecrets } from '../../src/tls/farm-ticket-secret.js'
import { TicketKeySchedule } from '../../src/tls/ticket-keys.js'
import { tempDir } from '../helpers/certs.js'
import { sClient, startFarm } from '../helpers/farm.js'
import { childPids, eventually } from '../helpers/node-process.js'

// Two nodes of two workers each with a 2-second ticket key rotation, so the test can cross
// rotations quickly. Every worker records what the primary sends it (test/helpers/ipc-recorder.ts).
const ROTATION_S = 2
const SESSION_TIMEOUT_S = 60
const RECORDER = fileURLToPath(new URL('../helpers/ipc-recorder.js', import.meta.url))
let farm: Awaited<ReturnType<typeof startFarm>>
let received: string

before(async () => {
  received = tempDir()
  farm = await startFarm(['127.0.0.1', '127.0.0.2'], {
    sync: (i, ports) => ['--sync-listen', `127.0.0.${i + 1}:${ports[i] as number}`, '--sync-peer', `127.0.0.${2 - i}:${ports[1 - i] as number}`],
    extra: ['--ticket-rotation', String(ROTATION_S), '--session-timeout', String(SESSION_TIMEOUT_S)],
    workers: 2,
    env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${RECORDER}`.trim(), TLSFLEET_TEST_IPC_RECORD: received }
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

/** Wait until late in a rotation period, so the rotation comes right after what follows. */
async function lateInPeriod (): Promise<void> {
  const period = ROTATION_S * 1000
  const untilLate = (period - (Date.now() % period)) - 400
  if (untilLate > 0) await new Promise((resolve) => setTimeout(resolve, untilLate))
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

test('a TLS 1.2 ticket issued before a key rotation resumes after it on other worker processes and on the other node', async () => {
  const [n1, n2] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0]]
  const sess = path.join(farm.dir, 'ticket-1.2.pem')
  await lateInPeriod()
  const first = await sClient({ host: n1.host, port: n1.port, tls: '1.2', sessOut: sess })
  assert.equal(first.protocol, 'TLSv1.2', first.output)
  assert.equal(first.reused, false)
  await crossRotation()
  // The workers that issued it are gone: their replacements hold only the keys the primary
  // gave them at their start (TLS 1.2 ticket clients are not kept for session-ID resumption).
  const workers = (): number[] => childPids(n1.node.process.pid as number)
  const killed = workers()
  assert.equal(killed.length, 2, `expected 2 workers, found ${killed.join(',')}`)
  for (const pid of killed) process.kill(pid, 'SIGKILL')
  await eventually(() => { const now = workers(); return now.length === 2 && now.every((pid) => !killed.includes(pid)) }, 15_000, 'replacement workers')
  await eventually(async () => await n1.node.metric('tlsfleet_workers', { state: 'listening' }) === 2, 15_000, 'workers listening')
  for (let i = 0; i < 6; i++) {
    const again = await sClient({ host: n1.host, port: n1.port, tls: '1.2', sessIn: sess })
    assert.equal(again.reused, true, `node 1 (replacement workers), connection ${i + 1}, after the rotation:\n${again.output}`)
  }
  assert.equal((await sClient({ host: n2.host, port: n2.port, tls: '1.2', sessIn: sess })).reused, true, 'the other node, same farm secret, after the rotation')
  // One more rotation: the replacements got the next keys pushed, and the ticket still opens.
  await crossRotation()
  assert.equal((await sClient({ host: n1.host, port: n1.port, tls: '1.2', sessIn: sess })).reused, true, 'two rotations later')
})

test('the workers never receive the farm secret nor the ticket secret: only tags and the keys of acceptable epochs', async () => {
  // At least one rotation while the current workers live, so that pushes were received too.
  await crossRotation()
  await new Promise((resolve) => setTimeout(resolve, 300))
  const [farmKey] = loadFarmSecrets([farm.secret])
  const [ticketSecret] = farmTicketSecrets(loadFarmSecrets([farm.secret]))
  assert.ok(farmKey !== undefined && ticketSecret !== undefined)
  const files = fs.readdirSync(received)
  const payloads = files.filter((f) => f.endsWith('.bin')).map((f) => fs.readFileSync(path.join(received, f)))
  const lines = files.filter((f) => f.endsWith('.jsonl')).flatMap((f) => fs.readFileSync(path.join(received, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { t: string; settingsKeys?: string[] }))
  assert.ok(payloads.length >= 6, `every worker recorded (4 at start, 2 replacements): ${files.join(', ')}`)
  const inits = lines.filter((l) => l.t === 'init')
  assert.ok(inits.length >= 6)
  for (const init of inits) {
    assert.ok(init.settingsKeys?.includes('ticketKeys'), 'the settings carry keys')
    assert.ok(!(init.settingsKeys?.includes('ticketSecrets') ?? true), 'the settings carry no secret')
  }
  assert.ok(lines.some((l) => l.t === 'ticket-keys'), 'keys are pushed at rotations')
  for (const [i, payload] of payloads.entries()) {
    const secrets: Array<[string, Buffer]> = [['farm secret', farmKey.secret], ['ticket secret', ticketSecret]]
    for (const [what, bytes] of secrets) {
      assert.equal(payload.indexOf(bytes), -1, `${files.filter((f) => f.endsWith('.bin'))[i] ?? ''}: the ${what} reached a worker`)
      assert.equal(payload.indexOf(bytes.subarray(0, 16)), -1, `half the ${what} reached a worker`)
    }
  }
  // The scan sees key material at all: the current epoch's key is there.
  const current = new TicketKeySchedule({ secret: ticketSecret, rotationSeconds: ROTATION_S, lifetimeSeconds: SESSION_TIMEOUT_S }).current()
  assert.ok(payloads.some((p) => p.includes(current.keys)), 'the current key reached the workers (the recorder sees Buffers)')
})
