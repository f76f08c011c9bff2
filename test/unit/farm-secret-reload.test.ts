import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { FarmSecretError } from '../../src/errors.js'
import { TicketKeyPusher } from '../../src/haproxy/ticket-key-pusher.js'
import type { HaproxyRuntimeApi } from '../../src/haproxy/runtime-api.js'
import { expectedRing, haproxyKeyLine } from '../../src/haproxy/tls-keys.js'
import { TicketKeyFeed } from '../../src/node/ticket-key-feed.js'
import { SessionSealer } from '../../src/store/sealed-session.js'
import { V2Codec } from '../../src/sync/codecs.js'
import { FarmKeyRing, type FarmKey } from '../../src/sync/farm-keys.js'
import { farmKeyId, loadFarmSecrets } from '../../src/sync/farm-secret.js'
import { FarmSecretFiles, sameFarmKeys } from '../../src/sync/farm-secret-reload.js'
import type { TicketKeySet } from '../../src/tls/ticket-key-ring.js'
import { TicketKeyRing } from '../../src/tls/ticket-key-ring.js'
import { TicketKeySchedule } from '../../src/tls/ticket-keys.js'
import { tempDir } from '../helpers/certs.js'

const dir = tempDir()
const file = (name: string, text: string, mode = 0o600): string => {
  const p = path.join(dir, name)
  fs.writeFileSync(p, text, { mode })
  fs.chmodSync(p, mode)
  return p
}
const secretText = (): string => crypto.randomBytes(48).toString('base64') + '\n'
const keyOf = (text: string): FarmKey => { const secret = Buffer.from(text.trimEnd()); return { id: farmKeyId(secret), secret } }

test('a second --sync-secret-file that is empty holds no secret; an empty first one, or a missing second one, is still refused', () => {
  const a = secretText()
  const first = file('first.key', a)
  for (const empty of ['', '\n']) {
    assert.deepEqual(loadFarmSecrets([first, file('empty.key', empty)]), [keyOf(a)])
  }
  assert.throws(() => loadFarmSecrets([file('empty-first.key', ''), first]), (err: unknown) => err instanceof FarmSecretError && /empty-first\.key": 0 bytes; a farm secret needs at least 32/.test(err.message))
  assert.throws(() => loadFarmSecrets([first, path.join(dir, 'missing.key')]), (err: unknown) => err instanceof FarmSecretError && err.file.endsWith('missing.key'))
  // An empty second file readable by others is refused as a full one is: the slot's mode matters too.
  assert.throws(() => loadFarmSecrets([first, file('open-empty.key', '', 0o644)]), (err: unknown) => err instanceof FarmSecretError && /readable by group or others/.test(err.problem))
})

test('FarmSecretFiles.reload: the same contents are unchanged, other ones changed (key ids, sending first), a broken file refused with the file named and the secrets kept', () => {
  const [a, b] = [secretText(), secretText()]
  const sending = file('r-sending.key', a)
  const other = file('r-other.key', '')
  const files = new FarmSecretFiles([sending, other], loadFarmSecrets([sending, other]))
  assert.deepEqual(files.reload(), { result: 'unchanged' })
  fs.writeFileSync(other, b)
  const step1 = files.reload()
  assert.equal(step1.result, 'changed')
  if (step1.result !== 'changed') return
  assert.deepEqual(step1.before, { sending: keyOf(a).id, accepted: [keyOf(a).id] })
  assert.deepEqual(step1.after, { sending: keyOf(a).id, accepted: [keyOf(a).id, keyOf(b).id] })
  assert.deepEqual(files.keys, [keyOf(a), keyOf(b)])
  // Every start check, at SIGHUP: too short, readable by others, too big; nothing changes.
  for (const [text, mode, problem] of [['short\n', 0o600, /5 bytes; a farm secret needs at least 32/], [b, 0o644, /readable by group or others/], ['x'.repeat(17 * 1024), 0o600, /16 KiB/]] as const) {
    fs.writeFileSync(sending, text)
    fs.chmodSync(sending, mode)
    const refused = files.reload()
    assert.equal(refused.result, 'refused')
    if (refused.result === 'refused') {
      assert.equal(refused.error.file, sending)
      assert.match(refused.error.problem, problem)
    }
    assert.deepEqual(files.keys, [keyOf(a), keyOf(b)], 'the secrets held stay')
  }
  fs.chmodSync(sending, 0o600)
  fs.writeFileSync(sending, b)
  fs.writeFileSync(other, a)
  const step2 = files.reload()
  assert.equal(step2.result === 'changed' && step2.after.sending, keyOf(b).id)
  // The same two secrets, order swapped back: the sending one differs, so it is a change.
  assert.equal(sameFarmKeys([keyOf(a), keyOf(b)], [keyOf(b), keyOf(a)]), false)
})

const clock = { sessionTimeoutSeconds: 300, maxSkewSeconds: 5 }
const newMessage = (): { op: 'new'; sessionId: Buffer; session: Buffer; createdAt: number } => ({ op: 'new', sessionId: crypto.randomBytes(32), session: crypto.randomBytes(100), createdAt: Math.floor(Date.now() / 1000) })

test('V2Codec.setFarmKeys: seals under the new first key at once, opens any key listed, refuses a dropped one as unknown_key; the replay window carries over', () => {
  const [a, b] = [keyOf(secretText()), keyOf(secretText())]
  const sender = new V2Codec([a], 'sender', clock)
  const receiver = new V2Codec([a], 'receiver', clock)
  const underA = sender.encode(newMessage())
  assert.equal(receiver.decode(underA)[0]?.ok, true)
  receiver.setFarmKeys([a, b]) // step 1 on the receiver
  sender.setFarmKeys([b, a]) // step 2 on the sender
  assert.deepEqual(sender.farmKey, { id: b.id, fingerprint: new FarmKeyRing([b]).current().fingerprint })
  const underB = sender.encode(newMessage())
  assert.equal(underB[3], b.id)
  assert.equal(receiver.decode(underB)[0]?.ok, true)
  // Already accepted under A: still a replay after the receiver's keys changed.
  const again = receiver.decode(underA)[0]
  assert.equal(again?.ok === false && again.reason, 'replay')
  receiver.setFarmKeys([b]) // step 3
  assert.equal(receiver.decode(sender.encode(newMessage()))[0]?.ok, true)
  const stale = receiver.decode(underA)[0]
  assert.equal(stale?.ok === false && stale.reason, 'unknown_key')
  assert.deepEqual(receiver.refusalContext.keyIds, [b.id])
})

test('SessionSealer.setRing: values sealed under the old secret open while it is listed, not after; new values are sealed under the new one', () => {
  const [a, b] = [keyOf(secretText()), keyOf(secretText())]
  const sealer = new SessionSealer(new FarmKeyRing([a]))
  const id = crypto.randomBytes(32)
  const entry = { createdAt: 1_800_000_000, der: crypto.randomBytes(80) }
  const underA = sealer.seal(id, entry)
  sealer.setRing(new FarmKeyRing([b, a]))
  assert.deepEqual(sealer.open(id, underA), { ok: true, entry })
  const underB = sealer.seal(id, entry)
  assert.equal(underB[1], b.id)
  sealer.setRing(new FarmKeyRing([b]))
  assert.deepEqual(sealer.open(id, underA), { ok: false, reason: 'unknown_key' })
  assert.deepEqual(sealer.open(id, underB), { ok: true, entry })
})

test('TicketKeyFeed.setSecrets: the workers get every acceptable key of the new first secret (it issues) and still the old one\'s', () => {
  const [oldSecret, newSecret] = [crypto.randomBytes(32), crypto.randomBytes(32)]
  const now = { ms: 1_800_000_000_000 }
  const pushed: TicketKeySet[] = []
  const feed = new TicketKeyFeed({ secrets: [oldSecret], rotationSeconds: 60, lifetimeSeconds: 300, push: (set) => pushed.push(set), now: () => now.ms })
  const ring = new TicketKeyRing({ rotationSeconds: 60, lifetimeSeconds: 300 })
  assert.equal(ring.update(feed.all(), now.ms).ok, true)
  const tagOf = (secret: Buffer): Buffer => new TicketKeySchedule({ secret, rotationSeconds: 60, lifetimeSeconds: 300 }).tag
  const oldName = ring.issuing(now.ms)?.generation.name as Buffer
  feed.setSecrets([newSecret, oldSecret])
  assert.equal(pushed.length, 1)
  const update = ring.update(pushed[0], now.ms)
  assert.deepEqual(update.ok && update.tagsChanged, true)
  assert.deepEqual(ring.tags, [tagOf(newSecret), tagOf(oldSecret)])
  assert.deepEqual(ring.issuing(now.ms)?.generation.name.subarray(0, 8), tagOf(newSecret))
  assert.equal(ring.byName(oldName, now.ms)?.schedule, 1, 'a ticket of the old secret still opens')
  feed.setSecrets([newSecret])
  ring.update(pushed[1], now.ms)
  assert.equal(ring.byName(oldName, now.ms), undefined, 'dropped with its secret')
})

test('TicketKeyPusher.setSchedule: HAProxy\'s ring moves to the new secret, keeping the old secret\'s current key until the next rotation', async () => {
  let at = 1_800_000_000_000 + 10_000
  const oldSchedule = new TicketKeySchedule({ secret: crypto.randomBytes(32), rotationSeconds: 60, lifetimeSeconds: 300, now: () => at })
  const newSchedule = new TicketKeySchedule({ secret: crypto.randomBytes(32), rotationSeconds: 60, lifetimeSeconds: 300, now: () => at })
  const state = { ring: [...expectedRing(oldSchedule, at).lines] }
  const api = {
    showTlsKeys: async () => [...state.ring],
    setTlsKey: async (_file: string, line: string) => { state.ring = [...state.ring.slice(1), line] }
  } as unknown as HaproxyRuntimeApi
  const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-pusher-'))
  process.once('exit', () => fs.rmSync(keyDir, { recursive: true, force: true }))
  const pusher = new TicketKeyPusher(api, path.join(keyDir, 'keys'), oldSchedule, () => at)
  assert.equal((await pusher.check()).pushed, 0)
  const epoch = oldSchedule.epochAt(at)
  pusher.setSchedule(newSchedule, oldSchedule)
  const changed = await pusher.check()
  assert.deepEqual([changed.current, changed.pushed, changed.reason], [true, 3, 'repair'])
  const line = (s: TicketKeySchedule, e: number): string => haproxyKeyLine(s.generation(e).keys)
  // The old secret's encrypting key stays (its tickets of this epoch resume); the new one encrypts.
  assert.deepEqual(state.ring, [line(oldSchedule, epoch), line(newSchedule, epoch), line(newSchedule, epoch + 1)])
  assert.equal(fs.readFileSync(path.join(keyDir, 'keys'), 'utf8'), state.ring.join('\n') + '\n')
  at += 60_000
  const rotated = await pusher.check()
  assert.deepEqual([rotated.pushed, rotated.reason], [1, 'rotation'])
  assert.deepEqual(state.ring, expectedRing(newSchedule, at).lines)
  // Without the old secret listed, the new secret's ring at once.
  pusher.setSchedule(oldSchedule)
  await pusher.check()
  assert.deepEqual(state.ring, expectedRing(oldSchedule, at).lines)
})
