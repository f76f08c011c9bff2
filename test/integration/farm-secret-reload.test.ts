import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { farmKeyId } from '../../src/sync/farm-secret.js'
import { OFF_KEY_ID, splitDatagramV2 } from '../../src/sync/wire-v2.js'
import { farmTicketSecrets } from '../../src/tls/farm-ticket-secret.js'
import { TicketKeySchedule } from '../../src/tls/ticket-keys.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { newFarmSecretText, resumesEventually, sClient } from '../helpers/farm.js'
import { eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'
import { UdpRecorder } from '../helpers/udp-recorder.js'

// Two nodes synced over loopback UDP, each with its own fixed pair of secret files (as on two
// machines): farm.key sends, farm-other.key is accepted and empty between change-overs. The
// farm secret is changed from A to B with file edits and SIGHUP only (docs/operations.md
// "Changing the farm secret"), node by node, checking after each SIGHUP that sessions made on
// either node resume on the other and that neither refuses a packet of the other. A recorder is
// a third peer of node 1: it sees which key node 1 seals with, and keeps packets sealed under A.
const HOSTS = ['127.0.0.1', '127.0.0.2'] as const
interface Node { node: RunningNode; host: string; port: number; sync: number; sending: string; other: string }
let dir: string
let nodes: Node[]
let secretA: string
let secretB: string
let baseline: number[]
let recorder: UdpRecorder

/** An operator's secret: `openssl rand -base64 48`, as text. */
const newSecret = newFarmSecretText
/** Written as an operator would replace it: beside it, then renamed over it (0600). */
function writeSecret (file: string, text: string): void {
  fs.writeFileSync(file + '.tmp', text, { mode: 0o600 })
  fs.renameSync(file + '.tmp', file)
}
const idOf = (text: string): number => farmKeyId(Buffer.from(text.trimEnd()))

/** The tag every ticket name of this farm secret starts with (public), as the node derives it. */
function ticketTagOf (text: string): string {
  const secret = Buffer.from(text.trimEnd())
  const [ticketSecret] = farmTicketSecrets([{ id: farmKeyId(secret), secret }])
  return new TicketKeySchedule({ secret: ticketSecret as Buffer, rotationSeconds: 3600, lifetimeSeconds: 300 }).tag.toString('hex')
}

/** The tag of the ticket a node issues now (TLS 1.3, Node's client): which secret it issues under. */
async function issuedTag (n: Node): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = tls.connect({ host: n.host, port: n.port, servername: 'localhost', rejectUnauthorized: false, minVersion: 'TLSv1.3' })
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no TLS 1.3 session from ${n.host} within 5 s`)) }, 5000)
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
    socket.once('session', () => {
      clearTimeout(timer)
      const ticket = socket.getTLSTicket()
      socket.destroy()
      if (ticket === undefined) reject(new Error('no ticket')); else resolve(ticket.subarray(0, 8).toString('hex'))
    })
  })
}

before(async () => {
  dir = tempDir()
  const cert = makeCertificate(dir, 'farm', ['localhost'])
  secretA = newSecret()
  secretB = newSecret()
  const ports = await freePorts(6)
  recorder = await UdpRecorder.bind('127.0.0.1')
  nodes = await Promise.all(HOSTS.map(async (host, i) => {
    const own = path.join(dir, `node${i + 1}`)
    fs.mkdirSync(own, { mode: 0o700 })
    const sending = path.join(own, 'farm.key')
    const other = path.join(own, 'farm-other.key')
    writeSecret(sending, secretA)
    writeSecret(other, '') // no second secret between change-overs
    const port = ports[i * 3] as number
    const sync = ports[i * 3 + 2] as number
    const peer = i === 0 ? 1 : 0
    const node = await startNode([
      '--workers', '1', '--listen', `${host}:${port}`, '--cert', cert, '--node-id', `node${i + 1}`,
      '--sync-secret-file', sending, '--sync-secret-file', other, '--warm-join-timeout', '0.5',
      '--state-dir', path.join(own, 'state'),
      '--sync-listen', `${host}:${sync}`, '--sync-peer', `${HOSTS[peer]}:${ports[peer * 3 + 2] as number}`,
      ...(i === 0 ? ['--sync-peer', recorder.address] : [])
    ], { adminPort: ports[i * 3 + 1] as number })
    return { node, host, port, sync, sending, other }
  }))
  // Whatever the start refused (a peer's packets before it listened): counted before the steps.
  baseline = await Promise.all(nodes.map(async (n) => await refusedIn(n)))
})

after(async () => {
  await Promise.all((nodes ?? []).map(async (n) => await n.node.stop()))
  recorder?.close()
})

/** The key ids of the sync packets node 1 sent the recorder from `from` on (each datagram's packets). */
function keyIdsSince (from: number): number[] {
  return recorder.received.slice(from).flatMap((r) => {
    const split = splitDatagramV2(r.packet)
    return split.ok ? split.packets.map((p) => p[OFF_KEY_ID] as number) : []
  })
}

async function refusedIn (n: Node): Promise<number> {
  return await n.node.metric('tlsfleet_sync_packets_total', { direction: 'in' }) - await n.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' })
}

async function reloads (n: Node, result: string): Promise<number> {
  return await n.node.metric('tlsfleet_farm_secret_reloads_total', { result })
}

/** SIGHUP one node and wait until its farm secret reload is counted under `result`. */
async function hup (n: Node, result: 'ok' | 'unchanged' | 'refused'): Promise<void> {
  const before = await reloads(n, result)
  n.node.process.kill('SIGHUP')
  await eventually(async () => await reloads(n, result) === before + 1, 10_000, `farm secret reload ${result} on ${n.host}`)
}

/** A TLS 1.2 session ID (through the sync) and a TLS 1.3 ticket made on `from` resume on `to`. */
async function resumesAcross (from: Node, to: Node, what: string): Promise<void> {
  const sess12 = path.join(dir, 'tls12.pem')
  const first = await sClient({ host: from.host, port: from.port, tls: '1.2', sessOut: sess12, extra: ['-no_ticket'] })
  assert.equal(first.reused, false)
  const again = await resumesEventually(async () => await sClient({ host: to.host, port: to.port, tls: '1.2', sessIn: sess12, extra: ['-no_ticket'] }))
  assert.equal(again.reused, true, `${what}: TLS 1.2 session of ${from.host} not resumed on ${to.host}:\n${again.output}\n${to.node.diagnosis()}`)
  const sess13 = path.join(dir, 'tls13.pem')
  const ticket = await sClient({ host: from.host, port: from.port, tls: '1.3', sessOut: sess13 })
  assert.equal(ticket.protocol, 'TLSv1.3', ticket.output)
  const resumed = await sClient({ host: to.host, port: to.port, tls: '1.3', sessIn: sess13 })
  assert.equal(resumed.reused, true, `${what}: TLS 1.3 ticket of ${from.host} not resumed on ${to.host}:\n${resumed.output}`)
}

async function checkFarm (what: string): Promise<void> {
  const [n1, n2] = nodes as [Node, Node]
  await resumesAcross(n1, n2, what)
  await resumesAcross(n2, n1, what)
  for (const [i, n] of nodes.entries()) assert.equal(await refusedIn(n), baseline[i], `${what}: ${n.host} refused sync packets:\n${n.node.diagnosis()}`)
}

const reloadedLogs = (n: Node): Array<Record<string, unknown>> => n.node.logs.filter((l) => l.msg === 'farm secrets reloaded')

test('the farm secret changes from A to B with file edits and SIGHUP, node by node, resumption and sync intact at every step', async () => {
  const [n1, n2] = nodes as [Node, Node]
  const [idA, idB] = [idOf(secretA), idOf(secretB)]
  let seen = recorder.received.length
  await checkFarm('before the change-over')
  assert.deepEqual([...new Set(keyIdsSince(seen))], [idA])
  const sealedUnderA = recorder.received.map((r) => r.packet)
  for (const n of nodes) assert.equal(await issuedTag(n), ticketTagOf(secretA))
  // A ticket issued under A before the change-over: it must resume until A is dropped.
  const ticketA = path.join(dir, 'ticket-a.pem')
  assert.equal((await sClient({ host: n1.host, port: n1.port, tls: '1.3', sessOut: ticketA })).protocol, 'TLSv1.3')

  // Step 1: B accepted, A still sends.
  for (const n of nodes) writeSecret(n.other, secretB)
  for (const n of nodes) {
    await hup(n, 'ok')
    const logged = reloadedLogs(n).at(-1)
    assert.deepEqual({ sending: logged?.sending, accepted: logged?.accepted }, { sending: idA, accepted: [idA, idB] })
    assert.equal(await issuedTag(n), ticketTagOf(secretA), 'step 1: tickets are still issued under A')
    await checkFarm(`step 1, ${n.host} reloaded`)
  }

  // Step 2: B sends, A accepted. Between the two SIGHUPs node 1 sends B and node 2 still A.
  for (const n of nodes) { writeSecret(n.sending, secretB); writeSecret(n.other, secretA) }
  for (const n of nodes) {
    await hup(n, 'ok')
    const logged = reloadedLogs(n).at(-1)
    assert.deepEqual({ sending: logged?.sending, accepted: logged?.accepted }, { sending: idB, accepted: [idB, idA] })
    assert.equal(await issuedTag(n), ticketTagOf(secretB), 'step 2: tickets are issued under B')
    seen = recorder.received.length
    await checkFarm(`step 2, ${n.host} reloaded`)
    // Node 1 seals with B from its SIGHUP on (node 2 still sends A meanwhile, and opens B).
    assert.deepEqual([...new Set(keyIdsSince(seen))], [idB])
    for (const m of nodes) {
      const resumed = await sClient({ host: m.host, port: m.port, tls: '1.3', sessIn: ticketA })
      assert.equal(resumed.reused, true, `step 2: the ticket issued under A before the change-over does not resume on ${m.host}:\n${resumed.output}`)
    }
  }
  // The dashboard shows the new sending secret's schedule, and two secrets held.
  const dashboard = await (await fetch(`${n1.node.adminUrl}/v1/dashboard`)).json() as { tickets?: { farmSecrets?: number } }
  assert.equal(dashboard.tickets?.farmSecrets, 2)

  // A bad file at SIGHUP changes nothing: the error names it, the refusal is counted.
  fs.chmodSync(n1.other, 0o644)
  const logsBefore = n1.node.logs.length
  await hup(n1, 'refused')
  const refusal = n1.node.logs.slice(logsBefore).find((l) => l.msg === 'farm secret reload refused; keeping the current secrets')
  assert.equal(refusal?.file, n1.other, JSON.stringify(refusal))
  assert.match(String(refusal?.problem), /readable by group or others/)
  await checkFarm('after a refused reload')
  assert.equal((await sClient({ host: n1.host, port: n1.port, tls: '1.3', sessIn: ticketA })).reused, true, 'A is still accepted after the refused reload')
  // Put right: the same secrets as held, so nothing changes and nothing is said.
  fs.chmodSync(n1.other, 0o600)
  const reloadedBefore = reloadedLogs(n1).length
  await hup(n1, 'unchanged')
  assert.equal(reloadedLogs(n1).length, reloadedBefore)

  // Step 3: A dropped (the second file emptied).
  for (const n of nodes) writeSecret(n.other, '')
  for (const n of nodes) {
    await hup(n, 'ok')
    const logged = reloadedLogs(n).at(-1)
    assert.deepEqual({ sending: logged?.sending, accepted: logged?.accepted }, { sending: idB, accepted: [idB] })
    assert.equal(await issuedTag(n), ticketTagOf(secretB), 'step 3: tickets are issued under B')
    await checkFarm(`step 3, ${n.host} reloaded`)
  }
  // A's tickets no longer open anywhere (a full handshake), and node 1's own packets sealed
  // under A before the change-over, sent again (a node left on the old secret, or a replay),
  // are refused as unknown_key: before any replay check, the key is not held.
  for (const n of nodes) assert.equal((await sClient({ host: n.host, port: n.port, tls: '1.3', sessIn: ticketA })).reused, false)
  const unknownBefore = await n2.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'unknown_key' })
  const packets = sealedUnderA.flatMap((d) => { const split = splitDatagramV2(d); return split.ok ? split.packets : [] })
  assert.ok(packets.length > 0)
  for (const datagram of sealedUnderA) await recorder.send(datagram, n2.sync, n2.host)
  await eventually(async () => await n2.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'unknown_key' }) === unknownBefore + packets.length, 5000, 'the packets sealed under A refused as unknown_key')
  assert.equal(await n2.node.metric('tlsfleet_farm_secret_reloads_total', { result: 'refused' }), 0)
})
