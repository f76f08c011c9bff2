import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { test } from 'node:test'
import { loadCertificateFile } from '../../src/tls/certificates.js'
import { loadConfig } from '../../src/config/load.js'
import { ContextPool } from '../../src/tls/context-pool.js'
import { CertificateContext } from '../../src/tls/secure-contexts.js'
import { resolveTlsPolicy } from '../../src/tls/tls-policy.js'
import { TicketKeySchedule } from '../../src/tls/ticket-keys.js'
import type { TicketKeySet } from '../../src/tls/ticket-key-ring.js'
import { TicketKeyFeed } from '../../src/node/ticket-key-feed.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'

const ROTATION = 3600
const LIFETIME = 300

function nameFor (secret: Buffer, epoch: number): Buffer {
  return new TicketKeySchedule({ secret, rotationSeconds: ROTATION, lifetimeSeconds: LIFETIME }).generation(epoch).name
}

/** A ticket laid out as OpenSSL makes one (name | IV | ciphertext | HMAC-SHA256), its MAC right for `epoch`'s keys. */
function ticketFor (secret: Buffer, epoch: number, rotation = ROTATION, lifetime = LIFETIME): Buffer {
  const generation = new TicketKeySchedule({ secret, rotationSeconds: rotation, lifetimeSeconds: lifetime }).generation(epoch)
  const body = Buffer.concat([generation.name, crypto.randomBytes(16), crypto.randomBytes(160)])
  return Buffer.concat([body, crypto.createHmac('sha256', generation.keys.subarray(16, 32)).update(body).digest()])
}

/** What the primary sends a worker starting at `ms`: the keys acceptable then, not the secret. */
function keysAt (secret: Buffer, ms: number, rotation = ROTATION, lifetime = LIFETIME): TicketKeySet {
  return new TicketKeyFeed({ secrets: [secret], rotationSeconds: rotation, lifetimeSeconds: lifetime, push: () => {}, now: () => ms }).all()
}

type Hello = NonNullable<Parameters<ContextPool['routerFor']>[0]>

/** A TLS 1.2 ClientHello presenting `ticket` (the pool reads its name, as client-hello.ts does). */
function helloWith (ticket?: Buffer): Hello {
  return {
    legacyVersion: 0x0303, supportedVersions: [], offersTls13: false, sessionId: Buffer.alloc(0), sessionTicketExtPresent: true, pskIdentities: [], statusRequest: false, signatures: 0,
    ...(ticket !== undefined ? { sessionTicket: ticket, ticketKeyName: ticket.subarray(0, 16) } : {})
  }
}

test('context pool: a ticket name picks its generation until it expires; new clients get the current one; rotation moves them', () => {
  const dir = tempDir()
  const bundle = loadCertificateFile(makeCertificate(dir, 'pool', ['pool.test']))
  const secret = crypto.randomBytes(32)
  const clock = { ms: 1000 * ROTATION * 500_000 + 10_000 } // 10 s into epoch 500000
  const policy = resolveTlsPolicy(loadConfig({ env: {} }))
  const pool = new ContextPool({ certificates: [bundle], clientAuth: {} }, { sessionIdContext: 'x', sessionTimeoutSeconds: LIFETIME, policy, clientVerify: 'none', sessionTickets: true, ticketKeys: keysAt(secret, clock.ms), ticketRotationSeconds: ROTATION }, () => clock.ms)
  const current = pool.routerFor(undefined)
  const previous = pool.routerFor(helloWith(ticketFor(secret, 499_999)))
  assert.notEqual(previous, current, 'a ticket of the previous epoch gets that epoch\'s keys')
  assert.equal(pool.routerFor(helloWith(ticketFor(secret, 499_999))), previous, 'the same again (cached)')
  assert.equal(pool.routerFor(helloWith(ticketFor(secret, 500_000))), current)
  assert.equal(pool.routerFor(helloWith(ticketFor(crypto.randomBytes(32), 499_999))), current, 'another farm\'s ticket: a new client')
  assert.equal(pool.routerFor(helloWith(ticketFor(secret, 499_990))), current, 'a ticket too old to be valid: a new client')
  // The previous epoch's tickets die LIFETIME seconds after that epoch ended.
  clock.ms += (LIFETIME - 10) * 1000 + 1
  assert.equal(pool.routerFor(helloWith(ticketFor(secret, 499_999))), current, 'expired: the cached choice is not used any more')
  // At the rotation, new clients move to the next generation, and the old current one stays for its tickets.
  clock.ms = 1000 * ROTATION * 500_001 + 5
  const next = pool.routerFor(undefined)
  assert.notEqual(next, current)
  assert.equal(pool.routerFor(helloWith(ticketFor(secret, 500_000))), current)
})

test('context pool: a ticket whose name is ours but whose HMAC is not builds no generation; genuine tickets of many epochs are held at most 64 at a time', () => {
  const dir = tempDir()
  const bundle = loadCertificateFile(makeCertificate(dir, 'forged', ['forged.test']))
  const secret = crypto.randomBytes(32)
  // A day of sessions over 10-second rotations: 8640 past epochs are acceptable.
  const [rotation, lifetime] = [10, 86_400]
  const epoch = 170_000_000
  const clock = { ms: 1000 * rotation * epoch + 5 }
  const policy = resolveTlsPolicy(loadConfig({ env: {} }))
  const pool = new ContextPool({ certificates: [bundle], clientAuth: {} }, { sessionIdContext: 'x', sessionTimeoutSeconds: lifetime, policy, clientVerify: 'none', sessionTickets: true, ticketKeys: keysAt(secret, clock.ms, rotation, lifetime), ticketRotationSeconds: rotation }, () => clock.ms)
  const current = pool.routerFor(undefined)
  assert.equal(pool.generations, 1)
  // The farm tag is public (the first 8 bytes of any ticket) and the epoch a counter: a name
  // anyone can write, for 2000 past epochs, with random bytes where OpenSSL's would be.
  for (let back = 1; back <= 2000; back++) {
    const name = nameFor(secret, epoch - back)
    const forged = Buffer.concat([name, crypto.randomBytes(16 + 160 + 32)])
    assert.equal(pool.routerFor(helloWith(forged)), current, 'a forged ticket: a new client')
    // TLS 1.3: the same name as the first PSK identity.
    assert.equal(pool.routerFor({ ...helloWith(), offersTls13: true, pskIdentities: [forged], ticketKeyName: name }), current)
  }
  assert.equal(pool.generations, 1, 'no generation built for a forged name')
  // Genuine ones (the farm secret made them) do get their generation, up to the cap.
  const genuine = pool.routerFor(helloWith(ticketFor(secret, epoch - 1, rotation, lifetime)))
  assert.notEqual(genuine, current)
  assert.equal(pool.generations, 2)
  for (let back = 2; back <= 100; back++) pool.routerFor(helloWith(ticketFor(secret, epoch - back, rotation, lifetime)))
  assert.equal(pool.generations, 64, 'at most 64 generations held')
  assert.equal(pool.routerFor(undefined), current, 'the current one is never the one evicted')
})

test('context pool: the start builds every context of the current generation; a rotation or a reload builds only the default one, each other one when a client first names it', () => {
  const dir = tempDir()
  const bundles = ['a', 'b', 'c'].map((n) => loadCertificateFile(makeCertificate(dir, n, [`${n}.test`])))
  const secret = crypto.randomBytes(32)
  const clock = { ms: 1000 * ROTATION * 500_000 + 10_000 }
  const policy = resolveTlsPolicy(loadConfig({ env: {} }))
  const pool = new ContextPool({ certificates: bundles, clientAuth: {} }, { sessionIdContext: 'x', sessionTimeoutSeconds: LIFETIME, policy, clientVerify: 'none', sessionTickets: true, ticketKeys: keysAt(secret, clock.ms), ticketRotationSeconds: ROTATION }, () => clock.ms)
  const built = (router: ReturnType<ContextPool['routerFor']>): string[] => [...router.values()].map((choice) => choice.all).filter((c) => c.isBuilt).map((c) => c.bundles[0]?.names[0] ?? '')
  assert.deepEqual(built(pool.routerFor(undefined)), ['a.test', 'b.test', 'c.test'], 'at start: all, so no first handshake pays and a refusal fails the start')

  clock.ms = 1000 * ROTATION * 500_001 + 5
  const next = pool.routerFor(undefined)
  assert.deepEqual(built(next), ['a.test'], 'after the rotation: the default certificate only')
  const c = next.lookup('c.test').all
  assert.equal(c.isBuilt, false)
  const context = c.context()
  assert.equal(c.context(), context, 'built once, then kept')
  assert.deepEqual(built(next), ['a.test', 'c.test'])

  pool.setMaterial({ certificates: bundles, clientAuth: {} })
  assert.deepEqual(built(pool.routerFor(undefined)), ['a.test'], 'after a reload: the default certificate only')
})

test('a certificate context OpenSSL refuses throws its refusal each time, without trying again', () => {
  const dir = tempDir()
  const bundle = loadCertificateFile(makeCertificate(dir, 'weak', ['weak.test']))
  const policy = resolveTlsPolicy(loadConfig({ env: {} }))
  // A key that does not match the certificate: OpenSSL refuses the pair.
  const other = loadCertificateFile(makeCertificate(dir, 'other', ['other.test']))
  const context = new CertificateContext([{ ...bundle, key: other.key }], { sessionIdContext: 'x', sessionTimeoutSeconds: 300, policy, clientAuth: {} })
  let first: unknown
  assert.throws(() => context.context(), (err) => { first = err; return err instanceof Error })
  assert.throws(() => context.context(), (err) => err === first, 'the same refusal, not a second build')
  assert.equal(context.isBuilt, false)
})

test('context pool: keys come from the primary; a late push falls back to the newest key, said once; a malformed push is refused, said, and changes nothing', () => {
  const dir = tempDir()
  const bundle = loadCertificateFile(makeCertificate(dir, 'ring', ['ring.test']))
  const secret = crypto.randomBytes(32)
  const clock = { ms: 1000 * ROTATION * 500_000 + 10_000 }
  const policy = resolveTlsPolicy(loadConfig({ env: {} }))
  const logged: Array<{ level: string; message: string; fields: Record<string, unknown> }> = []
  const log = {
    warn: (fields: Record<string, unknown>, message: string) => { logged.push({ level: 'warn', message, fields }) },
    error: (fields: Record<string, unknown>, message: string) => { logged.push({ level: 'error', message, fields }) }
  }
  const pushed: TicketKeySet[] = []
  const primary = new TicketKeyFeed({ secrets: [secret], rotationSeconds: ROTATION, lifetimeSeconds: LIFETIME, push: (set) => pushed.push(set), now: () => clock.ms })
  const pool = new ContextPool({ certificates: [bundle], clientAuth: {} }, { sessionIdContext: 'x', sessionTimeoutSeconds: LIFETIME, policy, clientVerify: 'none', sessionTickets: true, ticketKeys: primary.all(), ticketRotationSeconds: ROTATION, log }, () => clock.ms)
  primary.start()
  primary.stop()
  const atStart = pool.routerFor(undefined)
  // Two rotations and no push: the newest key held (epoch 500001) issues, said once.
  clock.ms = 1000 * ROTATION * 500_002 + 5
  const late = pool.routerFor(undefined)
  assert.notEqual(late, atStart)
  assert.equal(pool.routerFor(helloWith(ticketFor(secret, 500_001))), late, 'the fallback key is the one 500001 names')
  clock.ms += 1000
  pool.routerFor(undefined)
  assert.deepEqual(logged.map((l) => l.level), ['warn'])
  assert.match(logged[0]?.message ?? '', /not sent the current ticket key/)
  // A malformed push: refused, logged, nothing changes.
  const held = pool.ticketKeysHeld
  assert.equal(pool.setTicketKeys({ runs: [{ tag: Buffer.alloc(8), from: 1.5, keys: Buffer.alloc(48) }] }), false)
  assert.equal(logged.at(-1)?.level, 'error')
  assert.match(String(logged.at(-1)?.fields.reason), /non-negative integer epoch/)
  assert.equal(pool.ticketKeysHeld, held)
  assert.equal(pool.routerFor(undefined), late)
  // The push comes: the current key issues at once; a ticket under it resumes.
  primary.pushNow()
  assert.equal(pool.setTicketKeys(pushed.at(-1)), true)
  const current = pool.routerFor(undefined)
  assert.notEqual(current, late)
  assert.equal(pool.routerFor(helloWith(ticketFor(secret, 500_002))), current)
})
