import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { farmRing, startHaproxyNode, type HaproxyNode } from '../helpers/haproxy-node.js'
import { eventually } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'
import { tls13TicketName } from '../helpers/tls-client.js'

/**
 * A real local HAProxy 2.6 companioned by `tlsfleet node --terminator haproxy`: the farm secret
 * changes from A to B with file edits and SIGHUP (docs/operations.md "Changing the farm
 * secret"). HAProxy's ring follows the sending secret, a ticket it issued under A before
 * step 2 still resumes after it (until the next rotation: HAProxy holds three keys), and no
 * more once A is dropped.
 */
const ROTATION_S = 60
const PERIOD_MS = ROTATION_S * 1000

let dir: string
let member: HaproxyNode
let backend: Awaited<ReturnType<typeof startRecordingBackend>>
let fileA: string
let fileB: string
let sending: string
let other: string

before(async () => {
  dir = tempDir()
  const cert = makeCertificate(dir, 'farm', ['localhost'])
  fileA = writeFarmSecret(dir, 'a.key')
  fileB = writeFarmSecret(dir, 'b.key')
  sending = path.join(dir, 'farm.key')
  other = path.join(dir, 'farm-other.key')
  fs.copyFileSync(fileA, sending)
  fs.writeFileSync(other, '', { mode: 0o600 })
  backend = await startRecordingBackend()
  // Far from a rotation: the ring of the change must still be the ring of its epoch when read.
  if (Date.now() % PERIOD_MS > PERIOD_MS - 25_000) await new Promise((resolve) => setTimeout(resolve, PERIOD_MS - (Date.now() % PERIOD_MS) + 500))
  member = await startHaproxyNode({ dir, name: 'n1', cert, secret: sending, rotationSeconds: ROTATION_S, backendPort: backend.port, nodeArgs: ['--sync-secret-file', other] })
})

after(async () => {
  await member?.stop()
  await backend?.close()
})

async function hupUntil (result: string, count: number): Promise<void> {
  member.node.process.kill('SIGHUP')
  await eventually(async () => await member.node.metric('tlsfleet_farm_secret_reloads_total', { result }) === count, 10_000, `farm secret reload ${result} #${count}`)
}

/** The key name of the ticket HAProxy issues now (TLS 1.3, Node's client). */
async function issuedName (): Promise<string> {
  return (await tls13TicketName(member.port)).toString('hex')
}

const nameOf = (line: string): string => Buffer.from(line, 'base64').subarray(0, 16).toString('hex')

test('--terminator haproxy: at step 2 HAProxy gets the new secret\'s ring, and a ticket it issued under the old one before still resumes', async () => {
  const ticketA = path.join(dir, 'ticket-a.sess')
  const first = await sClient({ port: member.port, servername: 'localhost', tls: '1.3', sessOut: ticketA })
  assert.equal(first.protocol, 'TLSv1.3', first.output)
  const ringA = farmRing(fileA, ROTATION_S)
  assert.equal(await issuedName(), nameOf(ringA.lines[1] as string))

  // Step 1: B accepted, A still sends: HAProxy's ring does not move.
  fs.copyFileSync(fileB, other)
  await hupUntil('ok', 1)
  assert.deepEqual(await member.haproxy.api.showTlsKeys(member.keyFile), ringA.lines)

  // Step 2: B sends, A accepted: B's ring, A's encrypting key kept in the oldest slot.
  fs.copyFileSync(fileB, sending)
  fs.copyFileSync(fileA, other)
  await hupUntil('ok', 2)
  const ringB = farmRing(fileB, ROTATION_S)
  const expected = [ringA.lines[1] as string, ringB.lines[1] as string, ringB.lines[2] as string]
  await eventually(async () => JSON.stringify(await member.haproxy.api.showTlsKeys(member.keyFile)) === JSON.stringify(expected), 5000, 'the ring of the change-over in the local haproxy')
  assert.equal(fs.readFileSync(member.keyFile, 'utf8'), expected.join('\n') + '\n', 'the key file holds it too (an HAProxy reload starts from it)')
  assert.equal(await issuedName(), nameOf(ringB.lines[1] as string), 'HAProxy issues tickets under B')
  const resumed = await sClient({ port: member.port, servername: 'localhost', tls: '1.3', sessIn: ticketA })
  assert.equal(resumed.reused, true, `the ticket issued under A before step 2 does not resume:\n${resumed.output}`)
  assert.equal(await member.node.metric('tlsfleet_terminator_serving'), 1)

  // Step 3 in the same epoch: A dropped, its key leaves HAProxy's ring at once.
  fs.writeFileSync(other, '')
  await hupUntil('ok', 3)
  await eventually(async () => JSON.stringify(await member.haproxy.api.showTlsKeys(member.keyFile)) === JSON.stringify(ringB.lines), 5000, 'B\'s own ring in the local haproxy')
  const dropped = await sClient({ port: member.port, servername: 'localhost', tls: '1.3', sessIn: ticketA })
  assert.equal(dropped.reused, false, 'A\'s ticket resumed after A was dropped')
})
