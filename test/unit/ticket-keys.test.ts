import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import type { AddressInfo } from 'node:net'
import tls from 'node:tls'
import { TICKET_KEY_LENGTH, TicketKeySchedule, type TicketKeyGeneration } from '../../src/tls/ticket-keys.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'

const secret = Buffer.from('0123456789abcdef0123456789abcdef')
const otherSecret = Buffer.from('fedcba9876543210fedcba9876543210')

/** A schedule with a settable clock (ms). */
function schedule (opts: { secret?: Buffer; rotationSeconds?: number; lifetimeSeconds?: number; at?: number } = {}): { s: TicketKeySchedule; clock: { ms: number } } {
  const clock = { ms: opts.at ?? 1_700_000_000_000 }
  const s = new TicketKeySchedule({
    secret: opts.secret ?? secret,
    rotationSeconds: opts.rotationSeconds ?? 3600,
    lifetimeSeconds: opts.lifetimeSeconds ?? 7200,
    now: () => clock.ms
  })
  return { s, clock }
}

describe('TicketKeySchedule derivation', () => {
  it('produces 48-byte Node ticketKeys whose first 16 bytes are the name', () => {
    const { s } = schedule()
    const g = s.current()
    assert.equal(TICKET_KEY_LENGTH, 48)
    assert.equal(g.keys.length, 48)
    assert.equal(g.name.length, 16)
    assert.deepEqual(g.keys.subarray(0, 16), g.name)
  })

  it('encodes the farm tag and the epoch in the name', () => {
    const { s } = schedule()
    const g = s.generation(471_111)
    assert.deepEqual(g.name.subarray(0, 8), s.tag)
    assert.equal(g.name.readBigUInt64BE(8), 471_111n)
    const tag = Buffer.from(crypto.hkdfSync('sha256', secret, Buffer.alloc(0), 'tlsfleet ticket name tag', 8))
    assert.deepEqual(s.tag, tag)
  })

  it('matches the documented HKDF layout', () => {
    const { s } = schedule()
    const epoch = 12345
    const eb = Buffer.alloc(8)
    eb.writeBigUInt64BE(BigInt(epoch))
    const info = Buffer.concat([Buffer.from('tlsfleet tls ticket key v1'), eb])
    const expected = Buffer.from(crypto.hkdfSync('sha256', secret, Buffer.alloc(0), info, 32))
    assert.deepEqual(s.generation(epoch).keys.subarray(16), expected)
  })

  it('is deterministic across instances with the same secret', () => {
    const a = schedule().s
    const b = schedule({ rotationSeconds: 60 }).s // rotation does not change a given epoch's keys
    for (const epoch of [0, 1, 99, 472_222]) {
      assert.deepEqual(a.generation(epoch).keys, b.generation(epoch).keys)
    }
    assert.deepEqual(a.current().keys, schedule().s.current().keys)
  })

  it('gives different keys and names for different secrets and epochs', () => {
    const a = schedule().s
    const b = schedule({ secret: otherSecret }).s
    assert.notDeepEqual(a.generation(5).keys, b.generation(5).keys)
    assert.notDeepEqual(a.generation(5).name, b.generation(5).name)
    assert.notDeepEqual(a.tag, b.tag)
    assert.notDeepEqual(a.generation(5).keys.subarray(16), a.generation(6).keys.subarray(16))
    assert.notDeepEqual(a.generation(5).keys.subarray(16, 32), a.generation(5).keys.subarray(32))
  })

  it('caches generations and does not let callers corrupt the secret', () => {
    const mine = Buffer.from(secret)
    const s = new TicketKeySchedule({ secret: mine, rotationSeconds: 60, lifetimeSeconds: 60, now: () => 0 })
    const before = Buffer.from(s.generation(3).keys)
    assert.equal(s.generation(3), s.generation(3))
    mine.fill(0)
    assert.deepEqual(s.generation(4).keys, schedule().s.generation(4).keys)
    assert.deepEqual(s.generation(3).keys, before)
    for (let e = 100; e < 300; e++) s.generation(e) // beyond the cache bound: still correct
    assert.deepEqual(s.generation(3).keys, before)
  })

  it('rejects bad options and epochs with clear errors', () => {
    assert.throws(() => new TicketKeySchedule({ secret: Buffer.alloc(8), rotationSeconds: 60, lifetimeSeconds: 60 }), /at least 16 bytes/)
    assert.throws(() => new TicketKeySchedule({ secret, rotationSeconds: 0, lifetimeSeconds: 60 }), /rotationSeconds/)
    assert.throws(() => new TicketKeySchedule({ secret, rotationSeconds: 1.5, lifetimeSeconds: 60 }), /rotationSeconds/)
    assert.throws(() => new TicketKeySchedule({ secret, rotationSeconds: 60, lifetimeSeconds: -1 }), /lifetimeSeconds/)
    const { s } = schedule()
    assert.throws(() => s.generation(-1), /epoch/)
    assert.throws(() => s.generation(1.5), /epoch/)
  })
})

describe('TicketKeySchedule rotation', () => {
  it('rotates at epoch boundaries of the injected clock', () => {
    const { s, clock } = schedule({ rotationSeconds: 3600, at: 3600_000 * 10 })
    assert.equal(s.epochAt(clock.ms), 10)
    assert.equal(s.current().epoch, 10)
    assert.equal(s.msUntilNextRotation(), 3600_000)
    clock.ms += 3600_000 - 1
    assert.equal(s.current().epoch, 10)
    assert.equal(s.msUntilNextRotation(), 1)
    clock.ms += 1
    assert.equal(s.current().epoch, 11)
    assert.equal(s.msUntilNextRotation(), 3600_000)
    assert.equal(s.epochAt(0), 0)
    assert.equal(s.epochAt(-5), 0)
  })

  it('acceptable(): next, current, and previous ones within the ticket lifetime', () => {
    // rotation 1h, lifetime 2h: at 10:30 tickets from epoch 9 (ended 10:00) and 8 (ended 9:00) may live.
    const { s, clock } = schedule({ rotationSeconds: 3600, lifetimeSeconds: 7200, at: 3600_000 * 10.5 })
    assert.deepEqual(s.acceptable().map((g) => g.epoch), [11, 10, 9, 8])
    clock.ms = 3600_000 * 11 - 1 // just before 11:00: epoch 8 ended 9:00, 2h ago minus 1 ms
    assert.deepEqual(s.acceptable().map((g) => g.epoch), [11, 10, 9, 8])
    clock.ms = 3600_000 * 11 // 11:00: epoch 8 tickets are all expired
    assert.deepEqual(s.acceptable().map((g) => g.epoch), [12, 11, 10, 9])
  })

  it('acceptable() with lifetime shorter than rotation keeps one previous generation briefly', () => {
    const { s, clock } = schedule({ rotationSeconds: 3600, lifetimeSeconds: 300, at: 3600_000 * 10 + 299_000 })
    assert.deepEqual(s.acceptable().map((g) => g.epoch), [11, 10, 9])
    clock.ms += 1000
    assert.deepEqual(s.acceptable().map((g) => g.epoch), [11, 10])
  })

  it('acceptable() never goes below epoch 0', () => {
    const { s } = schedule({ rotationSeconds: 60, lifetimeSeconds: 100_000, at: 90_000 })
    assert.deepEqual(s.acceptable().map((g) => g.epoch), [2, 1, 0])
  })

  it('byName maps current, next and previous names, and refuses expired and foreign ones', () => {
    const { s, clock } = schedule({ rotationSeconds: 3600, lifetimeSeconds: 7200, at: 3600_000 * 10.5 })
    for (const epoch of [8, 9, 10, 11]) {
      const name = Buffer.from(s.generation(epoch).name) // a fresh copy, as read from a ClientHello
      assert.equal(s.byName(name)?.epoch, epoch)
      assert.deepEqual(s.byName(name)?.keys, s.generation(epoch).keys)
    }
    assert.equal(s.byName(s.generation(7).name), undefined, 'expired')
    assert.equal(s.byName(s.generation(12).name), undefined, 'too far in the future')
    const foreign = schedule({ secret: otherSecret, at: clock.ms }).s
    assert.equal(s.byName(foreign.current().name), undefined, 'other farm')
    assert.equal(s.byName(crypto.randomBytes(16)), undefined, 'random name')
    assert.equal(s.byName(Buffer.alloc(15)), undefined, 'short')
    assert.equal(s.byName(s.current().keys), undefined, 'whole key is not a name')
    const huge = Buffer.concat([s.tag, Buffer.alloc(8, 0xff)])
    assert.equal(s.byName(huge), undefined, 'epoch beyond safe integers')
    // After the clock moves on, the once-current name expires.
    const tenName = s.generation(10).name
    clock.ms = 3600_000 * 13
    assert.equal(s.byName(tenName), undefined)
    clock.ms = 3600_000 * 13 - 1
    assert.equal(s.byName(tenName)?.epoch, 10)
  })

  it('agrees across two nodes whose clocks differ by a little', () => {
    const a = schedule({ at: 3600_000 * 20 - 500 }).s // just before the rotation
    const b = schedule({ at: 3600_000 * 20 + 500 }).s // just after
    assert.equal(a.byName(b.current().name)?.epoch, 20, 'a accepts b\'s (next) generation')
    assert.equal(b.byName(a.current().name)?.epoch, 19, 'b accepts a\'s (previous) generation')
  })
})

/** A ticket as a real Node server (OpenSSL) issues it under `generation`'s keys, as its client receives it. */
async function realTicket (generation: TicketKeyGeneration, version: 'TLSv1.2' | 'TLSv1.3'): Promise<Buffer> {
  const pem = fs.readFileSync(makeCertificate(tempDir(), 'ticket', ['ticket.test']), 'utf8')
  // The server keeps the connection open: TLS 1.3 tickets follow the handshake.
  const open = new Set<tls.TLSSocket>()
  const server = tls.createServer({ key: pem, cert: pem, ticketKeys: generation.keys, minVersion: version, maxVersion: version }, (socket) => { open.add(socket); socket.on('error', () => {}); socket.write('x') })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const socket = tls.connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false })
      const timer = setTimeout(() => { socket.destroy(); reject(new Error(`${version}: no session within 5 s`)) }, 5000)
      socket.once('session', () => { clearTimeout(timer); const ticket = socket.getTLSTicket(); socket.destroy(); if (ticket !== undefined) resolve(ticket); else reject(new Error('no ticket')) })
      socket.once('error', reject)
      socket.on('data', () => {})
    })
  } finally {
    server.close()
    for (const socket of open) socket.destroy()
  }
}

describe('TicketKeySchedule.macValid', () => {
  it('accepts the tickets OpenSSL issues under a generation (TLS 1.2 and 1.3), and nothing else', async () => {
    const { s } = schedule()
    const generation = s.current()
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const ticket = await realTicket(generation, version)
      assert.deepEqual(ticket.subarray(0, 16), generation.name, `${version}: the key name first`)
      assert.equal(TicketKeySchedule.macValid(generation, ticket), true, `${version}: name | IV | ciphertext | HMAC-SHA256 under the HMAC secret`)
      assert.equal(TicketKeySchedule.macValid(s.generation(generation.epoch - 1), ticket), false, `${version}: another generation's key`)
      const flipped = Buffer.from(ticket)
      flipped[40] = (flipped[40] as number) ^ 1
      assert.equal(TicketKeySchedule.macValid(generation, flipped), false, `${version}: one bit changed`)
      assert.equal(TicketKeySchedule.macValid(generation, ticket.subarray(0, ticket.length - 1)), false, `${version}: cut short`)
    }
    // A name with random bytes after it (a forged ticket), and one too short to hold a MAC.
    assert.equal(TicketKeySchedule.macValid(generation, Buffer.concat([generation.name, crypto.randomBytes(96)])), false)
    assert.equal(TicketKeySchedule.macValid(generation, Buffer.concat([generation.name, crypto.randomBytes(32)])), false)
  })
})
