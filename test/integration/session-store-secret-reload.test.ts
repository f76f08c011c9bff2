import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { RedisServer } from '../../src/lab/redis-server.js'
import { farmKeyId } from '../../src/sync/farm-secret.js'
import { tempDir } from '../helpers/certs.js'
import { newFarmSecretText, resumesEventually, sClient, startFarm, type FarmNode } from '../helpers/farm.js'
import { eventually } from '../helpers/node-process.js'

// Two nodes sharing sessions through a real redis-server only (no sync), the farm secret changed
// from A to B with file edits and SIGHUP: values sealed under A open while A is listed, new ones
// are sealed under B from step 2, and A's stop opening once A is dropped.
const HOSTS = ['127.0.0.1', '127.0.0.2']
let redis: RedisServer
let farm: Awaited<ReturnType<typeof startFarm>>
let n1: FarmNode, n2: FarmNode
let other: string
let secretA: string
const secretB = newFarmSecretText()

before(async () => {
  redis = await RedisServer.start()
  const dir = tempDir()
  other = path.join(dir, 'farm-other.key')
  fs.writeFileSync(other, '', { mode: 0o600 })
  farm = await startFarm(HOSTS, { dir, startTimeoutMs: 60_000, sync: () => ['--session-store', redis.url, '--session-store-timeout', '20', '--sync-secret-file', other] })
  ;[n1, n2] = farm.nodes as [FarmNode, FarmNode]
  secretA = fs.readFileSync(farm.secret, 'utf8')
})

after(async () => {
  await farm?.stop()
  await redis?.stop()
})

const tls12 = { tls: '1.2' as const, extra: ['-no_ticket'] }
const idOf = (text: string): number => farmKeyId(Buffer.from(text.trimEnd()))

function write (file: string, text: string): void {
  fs.writeFileSync(file + '.tmp', text, { mode: 0o600 })
  fs.renameSync(file + '.tmp', file)
}

async function hupAll (count: number): Promise<void> {
  for (const n of [n1, n2]) {
    n.node.process.kill('SIGHUP')
    await eventually(async () => await n.node.metric('tlsfleet_farm_secret_reloads_total', { result: 'ok' }) === count, 10_000, `reload ${count} on ${n.host}`)
  }
}

/** A TLS 1.2 session made on node 1 and the key id of the value the store holds for it. */
async function sessionOnNode1 (name: string): Promise<{ file: string; keyId: number }> {
  const file = path.join(farm.dir, `${name}.pem`)
  const first = await sClient({ host: n1.host, port: n1.port, sessOut: file, ...tls12 })
  const id = /Session-ID: ([0-9A-F]+)/.exec(first.output)?.[1]?.toLowerCase()
  assert.ok(id !== undefined, first.output)
  let value: Buffer = Buffer.alloc(0)
  await eventually(() => (value = redis.cli(['GET', `tlsfleet:session:${id}`])).length > 2, 5000, 'the value in the store')
  return { file, keyId: value[1] as number }
}

async function resumesOnNode2 (file: string): Promise<boolean> {
  return (await resumesEventually(async () => await sClient({ host: n2.host, port: n2.port, sessIn: file, ...tls12 }), 2000)).reused
}

test('the store\'s seal follows the farm secret change-over done with SIGHUP', async () => {
  const [idA, idB] = [idOf(secretA), idOf(secretB)]
  const early = await sessionOnNode1('early')
  const late = await sessionOnNode1('late')
  assert.deepEqual([early.keyId, late.keyId], [idA, idA])

  write(other, secretB) // step 1
  await hupAll(1)
  write(farm.secret, secretB) // step 2
  write(other, secretA)
  await hupAll(2)
  assert.equal(await resumesOnNode2(early.file), true, 'a value sealed under A opens while A is listed')
  const underB = await sessionOnNode1('under-b')
  assert.equal(underB.keyId, idB, 'sealed under B from step 2')
  assert.equal(await resumesOnNode2(underB.file), true)

  write(other, '') // step 3
  await hupAll(3)
  const rejected = await n2.node.metric('tlsfleet_session_store_rejected_total', { reason: 'unknown_key' })
  assert.equal(await resumesOnNode2(late.file), false, 'a value sealed under A no longer opens once A is dropped')
  await eventually(async () => await n2.node.metric('tlsfleet_session_store_rejected_total', { reason: 'unknown_key' }) > rejected, 5000, 'unknown_key counted')
})
