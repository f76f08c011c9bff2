import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { test } from 'node:test'
import { loadCertificateFile } from '../../src/tls/certificates.js'
import { loadConfig } from '../../src/config/load.js'
import { ContextPool } from '../../src/tls/context-pool.js'
import { resolveTlsPolicy } from '../../src/tls/tls-policy.js'
import { TicketKeySchedule } from '../../src/tls/ticket-keys.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'

const ROTATION = 3600
const LIFETIME = 300

function nameFor (secret: Buffer, epoch: number): Buffer {
  return new TicketKeySchedule({ secret, rotationSeconds: ROTATION, lifetimeSeconds: LIFETIME }).generation(epoch).name
}

test('context pool: a ticket name picks its generation until it expires; new clients get the current one; rotation moves them', () => {
  const dir = tempDir()
  const bundle = loadCertificateFile(makeCertificate(dir, 'pool', ['pool.test']))
  const secret = crypto.randomBytes(32)
  const clock = { ms: 1000 * ROTATION * 500_000 + 10_000 } // 10 s into epoch 500000
  const policy = resolveTlsPolicy(loadConfig({ env: {} }))
  const pool = new ContextPool({ certificates: [bundle], clientAuth: {} }, { sessionIdContext: 'x', sessionTimeoutSeconds: LIFETIME, policy, clientVerify: 'none', ticketSecrets: [secret], ticketRotationSeconds: ROTATION }, () => clock.ms)
  const hello = (name?: Buffer): Parameters<ContextPool['routerFor']>[0] => ({
    legacyVersion: 0x0303, supportedVersions: [], offersTls13: false, sessionId: Buffer.alloc(0), sessionTicketExtPresent: true, pskIdentities: [],
    ...(name !== undefined ? { ticketKeyName: name } : {})
  })
  const current = pool.routerFor(undefined)
  const previous = pool.routerFor(hello(nameFor(secret, 499_999)))
  assert.notEqual(previous, current, 'a ticket of the previous epoch gets that epoch\'s keys')
  assert.equal(pool.routerFor(hello(nameFor(secret, 499_999))), previous, 'the same again (cached)')
  assert.equal(pool.routerFor(hello(nameFor(secret, 500_000))), current)
  assert.equal(pool.routerFor(hello(nameFor(crypto.randomBytes(32), 499_999))), current, 'another farm\'s ticket: a new client')
  assert.equal(pool.routerFor(hello(nameFor(secret, 499_990))), current, 'a ticket too old to be valid: a new client')
  // The previous epoch's tickets die LIFETIME seconds after that epoch ended.
  clock.ms += (LIFETIME - 10) * 1000 + 1
  assert.equal(pool.routerFor(hello(nameFor(secret, 499_999))), current, 'expired: the cached choice is not used any more')
  // At the rotation, new clients move to the next generation, and the old current one stays for its tickets.
  clock.ms = 1000 * ROTATION * 500_001 + 5
  const next = pool.routerFor(undefined)
  assert.notEqual(next, current)
  assert.equal(pool.routerFor(hello(nameFor(secret, 500_000))), current)
})
