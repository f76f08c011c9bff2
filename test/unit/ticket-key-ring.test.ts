import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { describe, test } from 'node:test'
import { TicketKeyFeed } from '../../src/node/ticket-key-feed.js'
import { TicketKeyRing, type TicketKeySet } from '../../src/tls/ticket-key-ring.js'
import { TicketKeySchedule } from '../../src/tls/ticket-keys.js'

const ROTATION = 60
const LIFETIME = 300
const EPOCH = 28_000_000
const START = EPOCH * ROTATION * 1000 + 10_000 // 10 s into EPOCH

/** The primary's side, as a worker's settings and pushes get it. */
function feed (secrets: Buffer[], clock: { ms: number }, pushed: TicketKeySet[] = [], rotation = ROTATION, lifetime = LIFETIME): TicketKeyFeed {
  return new TicketKeyFeed({ secrets, rotationSeconds: rotation, lifetimeSeconds: lifetime, push: (set) => pushed.push(set), now: () => clock.ms })
}

function ring (rotation = ROTATION, lifetime = LIFETIME): TicketKeyRing {
  return new TicketKeyRing({ rotationSeconds: rotation, lifetimeSeconds: lifetime })
}

/** A deep copy: the ring zeroes the bytes of keys it does not keep, and those it drops. */
function copy (set: TicketKeySet): TicketKeySet {
  return { runs: set.runs.map((run) => ({ tag: Buffer.from(run.tag), from: run.from, keys: Buffer.from(run.keys) })) }
}

describe('ticket key ring', () => {
  test('holds exactly the keys the schedule derives for the acceptable epochs, found by name', () => {
    const secret = crypto.randomBytes(32)
    const clock = { ms: START }
    const schedule = new TicketKeySchedule({ secret, rotationSeconds: ROTATION, lifetimeSeconds: LIFETIME, now: () => clock.ms })
    const r = ring()
    const result = r.update(feed([secret], clock).all(), clock.ms)
    assert.deepEqual(result, { ok: true, tagsChanged: true, added: schedule.acceptable().length })
    for (const generation of schedule.acceptable()) {
      const found = r.byName(generation.name, clock.ms)
      assert.ok(found !== undefined, `epoch ${generation.epoch}`)
      assert.equal(found.schedule, 0)
      assert.deepEqual(found.generation.keys, generation.keys, 'byte-identical to the derivation')
      assert.equal(found.until, schedule.acceptableUntilMs(generation.epoch))
    }
    const tooOld = schedule.generation(EPOCH - 10)
    assert.equal(r.byName(tooOld.name, clock.ms), undefined, 'an epoch no longer acceptable is not held')
    const other = new TicketKeySchedule({ secret: crypto.randomBytes(32), rotationSeconds: ROTATION, lifetimeSeconds: LIFETIME }).generation(EPOCH)
    assert.equal(r.byName(other.name, clock.ms), undefined, 'another farm\'s name')
    assert.equal(r.byName(schedule.generation(EPOCH).name.subarray(0, 15), clock.ms), undefined, 'a short name')
  })

  test('acceptability is the schedule\'s, from epoch, rotation and lifetime alone', () => {
    const schedule = new TicketKeySchedule({ secret: crypto.randomBytes(32), rotationSeconds: ROTATION, lifetimeSeconds: LIFETIME })
    const r = ring()
    for (let ms = START - 400_000; ms < START + 400_000; ms += 7_919) {
      for (let epoch = EPOCH - 8; epoch <= EPOCH + 8; epoch++) {
        assert.equal(r.isAcceptable(epoch, ms), schedule.isAcceptable(epoch, ms), `epoch ${epoch} at ${ms}`)
      }
    }
  })

  test('keys no ticket can be valid under any more are dropped and zeroed; the issuing secret\'s newest stays', () => {
    const secret = crypto.randomBytes(32)
    const clock = { ms: START }
    const r = ring()
    r.update(feed([secret], clock).all(), clock.ms)
    const previous = r.byName(new TicketKeySchedule({ secret, rotationSeconds: ROTATION, lifetimeSeconds: LIFETIME }).generation(EPOCH - 1).name, clock.ms)
    assert.ok(previous !== undefined)
    const held = previous.generation.keys
    assert.ok(held.some((b) => b !== 0))
    clock.ms = previous.until
    assert.ok(r.prune(clock.ms) >= 1)
    assert.ok(held.every((b) => b === 0), 'the dropped key\'s bytes are zeroed')
    assert.equal(r.has(0, EPOCH - 1), false)
    // Far later, with no push: everything expired but the newest key, which still issues.
    clock.ms += 3600_000
    r.prune(clock.ms)
    assert.equal(r.size, 1)
    const issuing = r.issuing(clock.ms)
    assert.equal(issuing?.generation.epoch, EPOCH + 1)
    assert.equal(issuing?.fallback, true)
  })

  test('a worker whose primary is late issues under the newest key it holds, then under the current one once pushed', () => {
    const secret = crypto.randomBytes(32)
    const clock = { ms: START }
    const pushed: TicketKeySet[] = []
    const primary = feed([secret], clock, pushed)
    const r = ring()
    r.update(primary.all(), clock.ms)
    primary.start()
    primary.stop() // the test pushes by hand
    const issuing = (): { epoch?: number; fallback?: boolean } => ({ epoch: r.issuing(clock.ms)?.generation.epoch, fallback: r.issuing(clock.ms)?.fallback })
    assert.deepEqual(issuing(), { epoch: EPOCH, fallback: false })
    // A rotation's push: the new next epoch, and the current one again (a worker that missed a push heals).
    clock.ms += ROTATION * 1000
    assert.deepEqual(issuing(), { epoch: EPOCH + 1, fallback: false }, 'the next epoch was in the set: a late push costs nothing')
    primary.pushNow()
    let push = pushed.at(-1) as TicketKeySet
    assert.deepEqual(push.runs.map((run) => [run.from, run.keys.length / 48]), [[EPOCH + 1, 2]])
    let result = r.update(push, clock.ms)
    assert.equal(result.ok && result.added, 1, 'only the one it lacked is kept')
    assert.ok(push.runs[0]?.keys.subarray(0, 48).every((b) => b === 0), 'the copy it already held is zeroed in the message')
    // Three rotations without a push: the worker lacks the current epoch.
    clock.ms += 3 * ROTATION * 1000
    assert.deepEqual(issuing(), { epoch: EPOCH + 2, fallback: true })
    primary.pushNow()
    push = pushed.at(-1) as TicketKeySet
    assert.deepEqual(push.runs.map((run) => [run.from, run.keys.length / 48]), [[EPOCH + 3, 3]], 'from the first epoch not sent to the next')
    result = r.update(push, clock.ms)
    assert.equal(result.ok && result.added, 3)
    assert.deepEqual(issuing(), { epoch: EPOCH + 4, fallback: false })
  })

  test('malformed sets are refused whole and change nothing', () => {
    const secret = crypto.randomBytes(32)
    const clock = { ms: START }
    const r = ring()
    const good = feed([secret], clock).all()
    r.update(copy(good), clock.ms)
    const size = r.size
    const run = good.runs[0] as TicketKeySet['runs'][number]
    const otherTag = Buffer.from(run.tag)
    otherTag[0] = (otherTag[0] as number) ^ 1
    const wrongEpoch = Buffer.from(run.keys)
    wrongEpoch.writeUInt32BE(wrongEpoch.readUInt32BE(12) + 1, 12)
    const cases: Array<[string, unknown, RegExp]> = [
      ['not an object', 'keys', /not an object/],
      ['no runs', {}, /no runs/],
      ['a short tag', { runs: [{ ...run, tag: run.tag.subarray(0, 7) }] }, /tag must be 8 bytes/],
      ['a key cut short', { runs: [{ ...run, keys: run.keys.subarray(0, 47) }] }, /multiple of 48/],
      ['a non-integer epoch', { runs: [{ ...run, from: EPOCH + 0.5 }] }, /non-negative integer epoch/],
      ['a negative epoch', { runs: [{ ...run, from: -1 }] }, /non-negative integer epoch/],
      ['an epoch as a string', { runs: [{ ...run, from: String(EPOCH) }] }, /non-negative integer epoch/],
      ['keys of another tag', { runs: [{ ...run, tag: otherTag }] }, /does not start with the run's tag/],
      ['a key naming another epoch', { runs: [{ ...run, keys: wrongEpoch }] }, /names another epoch/],
      ['one tag twice', { runs: [run, run] }, /same tag/],
      ['keys not a Buffer', { runs: [{ ...run, keys: [...run.keys] }] }, /multiple of 48/]
    ]
    for (const [what, set, reason] of cases) {
      const result = r.update(set, clock.ms)
      assert.equal(result.ok, false, what)
      assert.match(result.ok ? '' : result.reason, reason, what)
      assert.equal(r.size, size, `${what}: nothing changed`)
      assert.equal(r.issuing(clock.ms)?.fallback, false)
    }
    // A good run after a bad one in the same set: refused too, nothing of it taken.
    const second = feed([crypto.randomBytes(32)], clock).all().runs[0] as TicketKeySet['runs'][number]
    assert.equal(r.update({ runs: [second, { ...run, from: 1.5 }] }, clock.ms).ok, false)
    assert.deepEqual(r.tags, [run.tag])
  })

  test('a set naming other secrets replaces the ring\'s: the first issues, one not named is zeroed', () => {
    const [oldSecret, newSecret] = [crypto.randomBytes(32), crypto.randomBytes(32)]
    const clock = { ms: START }
    const r = ring()
    r.update(feed([oldSecret], clock).all(), clock.ms)
    const oldKey = r.issuing(clock.ms)?.generation.keys as Buffer
    // The change-over: the new secret first, the old one still accepted.
    const both = feed([newSecret, oldSecret], clock).all()
    const result = r.update(both, clock.ms)
    assert.equal(result.ok && result.tagsChanged, true)
    assert.deepEqual(r.tags, both.runs.map((run) => run.tag))
    assert.equal(r.byName(oldKey.subarray(0, 16), clock.ms)?.schedule, 1, 'old tickets still open')
    assert.notDeepEqual(r.issuing(clock.ms)?.generation.keys, oldKey, 'new ones under the new secret')
    r.update(feed([newSecret], clock).all(), clock.ms)
    assert.ok(oldKey.every((b) => b === 0), 'the old secret\'s keys zeroed once not named')
    assert.equal(r.tags.length, 1)
  })

  test('the primary sends keys only: neither the ticket secret nor the farm secret appears in what a worker gets', () => {
    const secret = crypto.randomBytes(32)
    const clock = { ms: START }
    const set = feed([secret], clock, [], 10, 86_400).all()
    const run = set.runs[0] as TicketKeySet['runs'][number]
    assert.equal(run.keys.length, 8642 * 48, 'the window at 86400 / 10: 8642 keys, ~400 KB')
    assert.equal(run.keys.indexOf(secret.subarray(0, 8)), -1)
    assert.deepEqual(Object.keys(run).sort(), ['from', 'keys', 'tag'])
  })
})
