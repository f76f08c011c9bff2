import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { test } from 'node:test'
import { ExpirySweep } from '../../src/cache/expiry-sweep.js'
import { PrimarySessionCache } from '../../src/cache/primary-session-cache.js'
import { ENTRY_OVERHEAD_BYTES, entryCost, RUNNING_GROWTH, SessionStore } from '../../src/cache/session-store.js'
import { WorkerSessionCache, type L2Channel } from '../../src/cache/worker-session-cache.js'
import { WorkerMetrics } from '../../src/metrics/worker-metrics.js'
import { sessionProtocolVersion } from '../../src/tls/session-der.js'
import { SniRouter } from '../../src/tls/sni-router.js'

const id = (n: number): Buffer => Buffer.alloc(32, n)

test('entries expire at their original creation time plus the lifetime', () => {
  let now = 1_000_000_000
  const store = new SessionStore({ maxEntries: 10, lifetimeSeconds: 60, now: () => now })
  const createdAt = now / 1000 - 50
  assert.equal(store.set(id(1), { der: Buffer.from('a'), createdAt }), true)
  assert.ok(store.get(id(1)) !== undefined)
  now += 11_000
  assert.equal(store.get(id(1)), undefined)
  assert.equal(store.set(id(2), { der: Buffer.from('b'), createdAt: now / 1000 - 61 }), false, 'an expired session is not stored')
  assert.equal(store.hits, 1)
  assert.equal(store.misses, 1)
})

test('expired entries nobody asks for are purged a budget at a time, and the size then counts live entries only', () => {
  let now = 1_000_000_000_000
  const store = new SessionStore({ maxEntries: 100, lifetimeSeconds: 30, now: () => now })
  const seconds = (): number => Math.floor(now / 1000)
  for (let i = 0; i < 27; i++) store.set(id(i), { der: Buffer.from('old'), createdAt: seconds() })
  now += 20_000
  for (let i = 27; i < 30; i++) store.set(id(i), { der: Buffer.from('new'), createdAt: seconds() })
  now += 15_000 // the first 27 are 35 s old, past the 30 s lifetime; the last 3 are 15 s old
  assert.equal(store.size, 30, 'nothing read them: all still held')
  // A call looks at no more than its budget: a store of millions is never walked at once.
  assert.equal(store.purgeExpired(10), false)
  assert.equal(store.size, 20)
  let calls = 1
  while (!store.purgeExpired(10)) calls++
  assert.equal(calls, 3, 'the walk went on where it stopped')
  assert.equal(store.size, 3)
  assert.deepEqual([...store.entries()].map(([key]) => key[0]).sort(), [27, 28, 29])
  // Entries used during a walk are seen again at its newest end, not lost to it.
  for (let i = 0; i < 5; i++) store.set(id(40 + i), { der: Buffer.from('x'), createdAt: seconds() })
  assert.equal(store.purgeExpired(2), false)
  assert.ok(store.get(id(27)) !== undefined)
  now += 31_000
  while (!store.purgeExpired(2));
  assert.equal(store.size, 0)
})

test('the expiry sweep purges a store on its own, every period', async () => {
  let now = 1_000_000_000_000
  const store = new SessionStore({ maxEntries: 10_000, lifetimeSeconds: 30, now: () => now })
  for (let i = 0; i < 5000; i++) store.set(Buffer.from(String(i)), { der: Buffer.from('x'), createdAt: Math.floor(now / 1000) })
  store.set(id(1), { der: Buffer.from('x'), createdAt: Math.floor(now / 1000) + 20 })
  now += 31_000
  const sweep = new ExpirySweep(store, 20)
  try {
    // 5001 entries, at least a chunk of 2000 looked at a period: walked within a few periods.
    await new Promise((resolve) => setTimeout(resolve, 150))
    assert.equal(store.size, 1)
    assert.ok(store.has(id(1)))
  } finally {
    sweep.close()
  }
})

test('the byte bound evicts least recently used entries, each counted at its running cost', () => {
  const cost = entryCost(32, 200)
  assert.equal(cost, Math.ceil(RUNNING_GROWTH * (32 + 4 + 200)) + ENTRY_OVERHEAD_BYTES)
  const store = new SessionStore({ maxEntries: 1000, maxBytes: 3 * cost + Math.floor(cost / 2), lifetimeSeconds: 60 })
  const createdAt = Math.floor(Date.now() / 1000)
  for (let i = 0; i < 5; i++) store.set(id(i), { der: Buffer.alloc(200), createdAt })
  assert.equal(store.size, 3)
  assert.equal(store.has(id(0)), false)
  assert.equal(store.has(id(4)), true)
  assert.equal(store.bytes, 3 * cost)
})

test('L2 emits local changes for the sync, not the ones that came from peers', () => {
  const cache = new PrimarySessionCache({ maxEntries: 10, maxBytes: 1 << 20, lifetimeSeconds: 60 })
  const events: string[] = []
  cache.on('local-new', () => events.push('new'))
  cache.on('local-del', () => events.push('del'))
  const entry = { der: Buffer.from('x'), createdAt: Math.floor(Date.now() / 1000) }
  cache.addLocal(id(1), entry)
  cache.addRemote(id(2), entry)
  cache.deleteLocal(id(1))
  cache.deleteRemote(id(2))
  assert.deepEqual(events, ['new', 'del'])
})

function fakeL2 (answer: (id: Buffer) => Promise<{ der: Buffer; createdAt: number } | null>): L2Channel & { sent: string[] } {
  const sent: string[] = []
  return { sent, sendNew: () => sent.push('new'), sendDel: () => sent.push('del'), requestGet: answer }
}

test('worker cache: L1 hit, L2 hit fills L1, L2 timeout falls back to a full handshake', async () => {
  const metrics = new WorkerMetrics()
  const now = Math.floor(Date.now() / 1000)
  let slow = false
  const l2 = fakeL2(async (key) => {
    if (slow) return await new Promise((resolve) => setTimeout(() => resolve(null), 200))
    return key.equals(id(9)) ? { der: Buffer.from('remote'), createdAt: now } : null
  })
  const cache = new WorkerSessionCache({ l1Size: 10, lifetimeSeconds: 60, getTimeoutMs: 20 }, l2, metrics)
  cache.add(id(1), Buffer.from('local'))
  assert.deepEqual(l2.sent, ['new'])
  assert.equal((await cache.lookup(id(1)))?.toString(), 'local')
  assert.equal((await cache.lookup(id(9)))?.toString(), 'remote')
  assert.ok(cache.l1.has(id(9)), 'an L2 hit fills L1')
  assert.equal(await cache.lookup(id(5)), null)
  slow = true
  const started = Date.now()
  assert.equal(await cache.lookup(id(6)), null)
  assert.ok(Date.now() - started < 150, 'the lookup waited past its deadline')
  const counts = Object.fromEntries((await metrics.cacheLookups.get()).values.map((v) => [`${String(v.labels.level)}/${String(v.labels.result)}`, v.value]))
  assert.deepEqual(counts, { 'l1/hit': 1, 'l1/miss': 3, 'l2/hit': 1, 'l2/miss': 2 })
  assert.equal((await metrics.cacheGetTimeouts.get()).values[0]?.value, 1)
  cache.invalidate(id(1))
  assert.equal(cache.l1.has(id(1)), false)
  assert.deepEqual(l2.sent, ['new', 'del'])
})

test('SNI router: exact names, one-label wildcards, first registration wins, fallback', () => {
  const router = new SniRouter('default')
  router.add('app.example.com', 'app')
  router.add('*.example.com', 'wild')
  router.add('app.example.com', 'second')
  assert.equal(router.lookup('app.example.com'), 'app')
  assert.equal(router.lookup('APP.EXAMPLE.COM.'), 'app')
  assert.equal(router.lookup('x.example.com'), 'wild')
  assert.equal(router.lookup('y.x.example.com'), 'default')
  assert.equal(router.lookup('example.com'), 'default')
  assert.equal(router.lookup(undefined), 'default')
})

test('session DER protocol version is read from real OpenSSL sessions', async () => {
  const tls = await import('node:tls')
  const fs = await import('node:fs')
  const { makeCertificate, tempDir } = await import('../helpers/certs.js')
  const pem = fs.readFileSync(makeCertificate(tempDir(), 'c', ['localhost']), 'utf8')
  const server = tls.createServer({ key: pem, cert: pem, secureOptions: crypto.constants.SSL_OP_NO_TICKET, sessionIdContext: 't' })
  const versions: number[] = []
  server.on('newSession', (_id: Buffer, der: Buffer, cb: () => void) => { const v = sessionProtocolVersion(der); if (v !== undefined) versions.push(v); cb() })
  server.on('secureConnection', (s) => s.end())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
    await new Promise<void>((resolve) => {
      const c = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, maxVersion })
      c.on('data', () => {})
      c.on('close', () => resolve())
    })
  }
  server.close()
  assert.ok(versions.includes(0x0303), `no TLS 1.2 session seen: ${versions.join(',')}`)
  assert.ok(versions.includes(0x0304), `no TLS 1.3 session seen: ${versions.join(',')}`)
  assert.equal(sessionProtocolVersion(Buffer.from('garbage!')), undefined)
})

test('L2: a lookup that missed is answered when the session arrives within the wait, else "no" after it', async () => {
  const cache = new PrimarySessionCache({ maxEntries: 10, maxBytes: 1 << 20, lifetimeSeconds: 60 })
  const entry = { der: Buffer.from('arrives'), createdAt: Math.floor(Date.now() / 1000) }
  const waiting = cache.getOrWait(id(1), 200)
  assert.ok(waiting instanceof Promise, 'a miss waits')
  setTimeout(() => cache.addRemote(id(1), entry), 20)
  assert.equal((await waiting)?.der.toString(), 'arrives')
  assert.equal(cache.l2.hits, 1, 'counted as a hit once it arrived')
  assert.equal(cache.l2.misses, 0)
  assert.equal((cache.getOrWait(id(1), 200) as { der: Buffer } | undefined)?.der.toString(), 'arrives', 'a hit answers at once')
  const started = Date.now()
  assert.equal(await cache.getOrWait(id(2), 30), undefined)
  assert.ok(Date.now() - started >= 25, 'waited about 30 ms')
  assert.equal(cache.getOrWait(id(3), 0), undefined, 'no wait: answered at once')
  // Two waiters for one session, woken by a New from one of our own workers.
  const a = cache.getOrWait(id(4), 200)
  const b = cache.getOrWait(id(4), 200)
  cache.addLocal(id(4), entry)
  assert.deepEqual([(await a)?.createdAt, (await b)?.createdAt], [entry.createdAt, entry.createdAt])
})
