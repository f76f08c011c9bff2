import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import { SyncStateError } from '../../src/errors.js'
import { ReplayGuard } from '../../src/sync/replay-guard.js'
import { parseState, ReplayState, replayStateFile } from '../../src/sync/replay-state.js'
import { createLogger } from '../../src/util/logger.js'
import { tempDir } from '../helpers/certs.js'

const A = 'a1a2a3a4a5a6a7a8'
const B = 'b1b2b3b4b5b6b7b8'
const SKEW = 5000
const LIFETIME = 300_000
const log = createLogger({ level: 'silent', format: 'json' })

/** One process's replay state on a clock the test moves; a long interval: saves happen when the test says. */
function boot (file: string, startMs: number): { state: ReplayState; guard: ReplayGuard; clock: { now: number }; accept: (sender: string, seq: bigint, sentAt: number) => boolean } {
  const clock = { now: startMs }
  const guard = new ReplayGuard()
  const state = new ReplayState({ file, startMs, maxSkewMs: SKEW, sessionLifetimeMs: LIFETIME, log, now: () => clock.now, intervalMs: 3_600_000 }, guard)
  state.start()
  // What decodeV2 does once a packet authenticated: the floor, the window, beforeAccept, commit.
  const accept = (sender: string, seq: bigint, sentAt: number): boolean => {
    if (sentAt <= state.notBeforeMs || !guard.check(sender, seq, sentAt)) return false
    state.beforeAccept(sentAt)
    guard.commit(sender, seq, sentAt)
    return true
  }
  return { state, guard, clock, accept }
}

const saved = (file: string): NonNullable<ReturnType<typeof parseState>> => {
  const state = parseState(fs.readFileSync(file, 'utf8'))
  assert.ok(state !== undefined, 'the file holds a state')
  return state
}

describe('sync replay state across restarts', () => {
  it('a first start has no file: the floor is start - skew, and the file is made (0600, unclean)', () => {
    const file = path.join(tempDir(), 'state', 'sync.json')
    const { state } = boot(file, 1_000_000)
    assert.equal(state.previous, 'none')
    assert.equal(state.notBeforeMs, 1_000_000 - SKEW)
    assert.equal(fs.statSync(file).mode & 0o777, 0o600)
    assert.equal(saved(file).clean, false)
    state.close()
  })

  it('after a clean stop: everything accepted before is refused, what follows is accepted, no blackout', () => {
    const file = path.join(tempDir(), 'sync.json')
    const first = boot(file, 1_000_000)
    assert.equal(first.accept(A, 500n, 1_000_100), true)
    assert.equal(first.accept(A, 499n, 1_000_101), true)
    assert.equal(first.accept(B, 9n, 1_000_200), true)
    first.clock.now = 1_000_300
    first.state.close()
    assert.equal(saved(file).clean, true)

    const second = boot(file, 1_000_400)
    assert.equal(second.state.previous, 'clean')
    assert.equal(second.state.notBeforeMs, 1_000_400 - SKEW)
    for (const [sender, seq, at] of [[A, 500n, 1_000_100], [A, 499n, 1_000_101], [B, 9n, 1_000_200]] as const) {
      assert.equal(second.accept(sender, seq, at), false, `${sender} ${seq} replayed`)
    }
    // The senders' next packets, even dated before this start (within the skew), are new.
    assert.equal(second.accept(A, 501n, 1_000_350), true)
    assert.equal(second.accept(B, 10n, 1_000_410), true)
    second.state.close()
  })

  it('after a crash: nothing accepted before, even since the last save, comes back; the floor is the ceiling', () => {
    const file = path.join(tempDir(), 'sync.json')
    const first = boot(file, 2_000_000)
    assert.equal(first.accept(A, 10n, 2_000_500), true) // within the first ceiling: no save needed
    const ceiling = saved(file).ceilingMs
    assert.ok(ceiling >= 2_000_500)
    // A peer whose clock runs ahead: accepted only once a new ceiling is on disk.
    assert.equal(first.accept(B, 1n, ceiling + 1000), true)
    assert.ok(saved(file).ceilingMs >= ceiling + 1000, 'written before the packet was accepted')
    // ... the process dies here: no close(). Its last save did not include A's sequence 10's successors:
    assert.equal(first.accept(A, 11n, 2_000_600), true)

    const second = boot(file, 2_000_700)
    assert.equal(second.state.previous, 'unclean')
    assert.ok(second.state.notBeforeMs >= ceiling + 1000)
    for (const [sender, seq, at] of [[A, 10n, 2_000_500], [A, 11n, 2_000_600], [B, 1n, ceiling + 1000]] as const) {
      assert.equal(second.accept(sender, seq, at), false, `${sender} ${seq} replayed after the crash`)
    }
    assert.equal(second.accept(A, 12n, second.state.notBeforeMs + 1), true, 'a packet dated past the floor')
    second.state.close()
  })

  it('a floor is handed on: a crash, a quick clean restart, then the next start still refuses what the first accepted', () => {
    const file = path.join(tempDir(), 'sync.json')
    const first = boot(file, 3_000_000)
    first.accept(A, 1n, 3_000_100)
    first.accept(A, 2n, 3_000_200) // after the last save: only the ceiling covers it
    const second = boot(file, 3_000_300) // crash, restart
    second.clock.now = 3_000_400
    second.state.close() // a clean stop, having accepted nothing
    const third = boot(file, 3_000_500)
    assert.equal(third.state.previous, 'clean')
    assert.equal(third.accept(A, 2n, 3_000_200), false)
    third.state.close()
  })

  it('a file that cannot be read (torn, emptied by a power loss) refuses everything dated up to start + skew', () => {
    for (const content of ['', '{"format":"tlsfleet sync replay state","version":1', 'garbage\n', '{"format":"other"}\n']) {
      const file = path.join(tempDir(), 'sync.json')
      fs.writeFileSync(file, content)
      const { state } = boot(file, 4_000_000)
      assert.equal(state.previous, 'unreadable', JSON.stringify(content))
      assert.equal(state.notBeforeMs, 4_000_000 + SKEW)
      state.close()
    }
  })

  it('senders not heard from for longer than the session lifetime are not saved (all they sent is stale)', () => {
    const file = path.join(tempDir(), 'sync.json')
    const { state, clock, accept } = boot(file, 5_000_000)
    accept(A, 1n, 5_000_100)
    clock.now = 5_000_100 + LIFETIME + 1
    accept(B, 1n, clock.now)
    state.close()
    assert.deepEqual(Object.keys(saved(file).senders), [B])
  })

  it('does not overwrite a file another process has taken over since', () => {
    const file = path.join(tempDir(), 'sync.json')
    const first = boot(file, 6_000_000)
    const second = boot(file, 6_000_100) // e.g. a restart that overlapped
    first.state.close()
    assert.equal(saved(file).clean, false, 'the second process\'s file, untouched')
    second.state.close()
    assert.equal(saved(file).clean, true)
  })

  it('a state dir that cannot be used refuses the start with TLSFLEET_ERR_SYNC_STATE', () => {
    const notADir = path.join(tempDir(), 'file')
    fs.writeFileSync(notADir, '')
    assert.throws(() => boot(path.join(notADir, 'sync.json'), 1), (err: unknown) => err instanceof SyncStateError && err.code === 'TLSFLEET_ERR_SYNC_STATE' && /--state-dir/.test(err.message))
  })

  it('a start refused before the sync starts leaves no file (an empty one would read as unreadable next time)', () => {
    const file = path.join(tempDir(), 'state', 'sync.json')
    const state = new ReplayState({ file, startMs: 1000, maxSkewMs: SKEW, sessionLifetimeMs: LIFETIME, log, intervalMs: 3_600_000 }, new ReplayGuard())
    state.close()
    assert.equal(fs.existsSync(file), false)
    const again = boot(file, 2000)
    assert.equal(again.state.previous, 'none')
    assert.equal(saved(file).clean, false)
    again.state.close()
  })

  it('one file per sync address, and per TLS address where nodes share the sync address (multicast)', () => {
    assert.equal(replayStateFile('/s', '127.0.0.1:8446'), '/s/sync-replay-127.0.0.1_8446.json')
    assert.equal(replayStateFile('/s', '[ff12::1]:8446', '[::1]:8443'), '/s/sync-replay-_ff12__1__8446-___1__8443.json')
  })
})

describe('sequence numbers across a clock that went back', () => {
  it('a node restarted with its clock behind its previous start continues above its previous sequences (a peer refused all its packets as replays), and says so', async () => {
    const { V2Codec } = await import('../../src/sync/codecs.js')
    const crypto = await import('node:crypto')
    const { farmKeyId } = await import('../../src/sync/farm-secret.js')
    const secret = crypto.randomBytes(48)
    const farmKeys = [{ id: farmKeyId(secret), secret }]
    const dir = tempDir()
    const clock = { now: 1_800_000_000_000 }
    const options = { sessionTimeoutSeconds: 300, maxSkewSeconds: 120, now: () => clock.now }
    const message = (): Parameters<InstanceType<typeof V2Codec>['encode']>[0] => ({ op: 'new', sessionId: crypto.randomBytes(32), session: crypto.randomBytes(100), createdAt: Math.floor(clock.now / 1000) })
    const peer = new V2Codec(farmKeys, 'peer', options)
    const accepted = (datagram: Buffer): string => { const [r] = peer.decode(datagram); return r?.ok === true ? 'accepted' : String(r?.reason) }

    const first = new V2Codec(farmKeys, 'fixed-id', options, { file: path.join(dir, 'sync.json'), log })
    first.replayState?.start()
    assert.equal(accepted(first.encode(message())), 'accepted')
    clock.now += 5_000
    assert.equal(accepted(first.encode(message())), 'accepted')
    first.replayState?.close()

    // The same node, started again with its clock 60 s behind its previous start.
    clock.now -= 65_000
    const warnings: string[] = []
    const watching = { ...log, warn: (_fields: unknown, msg: string) => { warnings.push(msg) } } as unknown as typeof log
    const second = new V2Codec(farmKeys, 'fixed-id', options, { file: path.join(dir, 'sync.json'), log: watching })
    second.replayState?.start()
    assert.equal(accepted(second.encode(message())), 'accepted', 'refused after the clock went back')
    assert.equal(accepted(second.encode(message())), 'accepted')
    assert.equal(warnings.filter((w) => w.startsWith('sync: this clock is behind the previous run')).length, 1)
    second.replayState?.close()

    // A normal restart (clock forward) warns about nothing.
    clock.now += 120_000
    warnings.length = 0
    const third = new V2Codec(farmKeys, 'fixed-id', options, { file: path.join(dir, 'sync.json'), log: watching })
    third.replayState?.start()
    assert.equal(accepted(third.encode(message())), 'accepted')
    assert.deepEqual(warnings, [])
    third.replayState?.close()
  })
})
