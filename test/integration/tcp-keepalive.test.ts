import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import net from 'node:net'
import tls from 'node:tls'
import { after, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'

const nodes: RunningNode[] = []
const backends: Array<Awaited<ReturnType<typeof startRecordingBackend>>> = []

after(async () => {
  for (const node of nodes) await node.stop()
  for (const backend of backends) await backend.close()
})

/** The kernel's timer on the established TCP socket from `local` to `peer` (ss -o): "keepalive,6.9sec,0", or '' without one. */
function timerOf (localPort: number, peerPort: number): string {
  const lines = execFileSync('ss', ['-tnoH', 'state', 'established'], { encoding: 'utf8' }).split('\n')
  const line = lines.find((l) => {
    const [local, peer] = l.trim().split(/\s+/).slice(2, 4)
    return local?.endsWith(`:${localPort}`) === true && peer?.endsWith(`:${peerPort}`) === true
  })
  assert.ok(line !== undefined, `no established socket ${localPort} -> ${peerPort} in:\n${lines.join('\n')}`)
  return /timer:\(([^)]*)\)/.exec(line)?.[1] ?? ''
}

/** A node forwarding to a recording backend, with `args`; one proxied connection through it, left open. */
async function proxiedConnection (args: string[]): Promise<{ port: number; client: tls.TLSSocket; backendSide: net.Socket }> {
  const dir = tempDir()
  const cert = makeCertificate(dir, 'node', ['localhost'])
  const backend = await startRecordingBackend()
  backends.push(backend)
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`, '--cert', cert, ...args], { adminPort: admin })
  nodes.push(node)
  const client = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false })
  await new Promise<void>((resolve, reject) => { client.once('secureConnect', resolve); client.once('error', reject) })
  const marker = `hello-${port}`
  client.write(marker)
  await eventually(() => backend.connections.some((c) => c.received.toString() === marker), 5000, 'the backend got the plaintext')
  const backendSide = backend.connections.find((c) => c.received.toString() === marker)?.socket as net.Socket
  return { port, client, backendSide }
}

test('--tcp-keepalive 7: the node\'s client socket and its backend socket have the kernel\'s keepalive timer (hitch\'s tcp-keepalive, HAProxy\'s clitcpka/srvtcpka)', async () => {
  const { port, client, backendSide } = await proxiedConnection(['--tcp-keepalive', '7'])
  // The node's ends: the accepted client socket, and the one it connected to the backend.
  const clientSide = timerOf(port, client.localPort as number)
  const upstream = timerOf(backendSide.remotePort as number, backendSide.localPort as number)
  for (const [label, timer] of [['client socket', clientSide], ['backend socket', upstream]] as const) {
    const match = /^keepalive,([\d.]+)(sec|ms)/.exec(timer)
    assert.ok(match !== null, `${label}: expected a keepalive timer, got "${timer}"`)
    // ss prints the time left before the first probe, at most the 7 s asked for.
    assert.ok(Number(match[1]) <= 7, `${label}: ${timer}`)
  }
  // The test's own sockets (not the node's) have none: what is read is the node's setting.
  assert.doesNotMatch(timerOf(client.localPort as number, port), /keepalive/)
  assert.doesNotMatch(timerOf(backendSide.localPort as number, backendSide.remotePort as number), /keepalive/)
  client.destroy()
})

test('by default (--tcp-keepalive 0) neither of the node\'s sockets has a keepalive timer', async () => {
  const { port, client, backendSide } = await proxiedConnection([])
  assert.doesNotMatch(timerOf(port, client.localPort as number), /keepalive/)
  assert.doesNotMatch(timerOf(backendSide.remotePort as number, backendSide.localPort as number), /keepalive/)
  client.destroy()
})
