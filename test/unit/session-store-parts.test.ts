import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { describe, test } from 'node:test'
import { Registry } from 'prom-client'
import { loadConfig } from '../../src/config/load.js'
import { checkOptionCombinations } from '../../src/config/node-checks.js'
import { describeStoreTarget, parseStoreUrl } from '../../src/config/store-url.js'
import { ConfigConflictError, ConfigError } from '../../src/errors.js'
import { CircuitBreaker } from '../../src/store/circuit-breaker.js'
import type { KeyValueClient } from '../../src/store/redis-client.js'
import { SessionSealer } from '../../src/store/sealed-session.js'
import { MAX_VALUE_BYTES, SharedSessionStore, type StorePath } from '../../src/store/shared-session-store.js'
import { StoreMetrics } from '../../src/store/store-metrics.js'
import { FarmKeyRing } from '../../src/sync/farm-keys.js'
import { farmKeyId } from '../../src/sync/farm-secret.js'
import { createLogger } from '../../src/util/logger.js'

function farmKey (secret = crypto.randomBytes(48)): { id: number; secret: Buffer } {
  return { id: farmKeyId(secret), secret }
}
const key = farmKey()
const sealer = new SessionSealer(new FarmKeyRing([key]))
const id = crypto.randomBytes(32)
// A stand-in DER with recognisable bytes: the sealed value must not show them.
const der = Buffer.concat([Buffer.from('3082', 'hex'), Buffer.from('tlsfleet'), crypto.randomBytes(48)])
const entry = { der, createdAt: 1_700_000_000 }

describe('--session-store URLs', () => {
  test('one server, Sentinel and Cluster, with TLS, credentials and a database', () => {
    assert.deepEqual(parseStoreUrl('redis://127.0.0.1:6380/2'), { mode: 'standalone', tls: false, hosts: [{ host: '127.0.0.1', port: 6380 }], db: 2 })
    assert.deepEqual(parseStoreUrl('rediss://:s3cr%40t@cache.example:6379'), { mode: 'standalone', tls: true, hosts: [{ host: 'cache.example', port: 6379 }], db: 0, password: 's3cr@t' })
    assert.deepEqual(parseStoreUrl('redis+sentinel://app:pw@s1,s2:26380/mymaster/1'), { mode: 'sentinel', tls: false, hosts: [{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }], db: 1, username: 'app', password: 'pw', master: 'mymaster' })
    assert.deepEqual(parseStoreUrl('redis+cluster://[::1]:7000,127.0.0.1:7001'), { mode: 'cluster', tls: false, hosts: [{ host: '::1', port: 7000 }, { host: '127.0.0.1', port: 7001 }], db: 0 })
  })

  test('what is wrong is named', () => {
    assert.match(parseStoreUrl('memcache://x:1') as string, /unknown scheme "memcache:\/\/"/)
    assert.match(parseStoreUrl('127.0.0.1:6379') as string, /expected redis:\/\/HOST:PORT/)
    assert.match(parseStoreUrl('redis://a:1,b:2') as string, /redis\+sentinel/)
    assert.match(parseStoreUrl('redis+sentinel://a:1') as string, /master name/)
    assert.match(parseStoreUrl('redis://a:1/x') as string, /database "x"/)
    assert.match(parseStoreUrl('redis+cluster://a:1/0') as string, /no database/)
    assert.match(parseStoreUrl('redis://a:99999') as string, /out of range/)
  })

  test('the description for logs leaves the password out', () => {
    const target = parseStoreUrl('redis+sentinel://app:pw@s1:26379/mymaster/3')
    assert.ok(typeof target !== 'string')
    assert.equal(describeStoreTarget(target), 'redis+sentinel://app@s1:26379/mymaster/3')
  })

  test('options: a bad URL is a config error naming the key; the store without a farm secret, or a timeout the worker would not wait for, is a conflict', () => {
    assert.throws(() => loadConfig({ env: {}, flags: { 'session-store': 'redis://no host' } }), (err) => err instanceof ConfigError && /--session-store: "redis:\/\/no host" is not valid/.test(err.message))
    const noSecret = loadConfig({ env: {}, flags: { 'session-store': 'redis://127.0.0.1:6379' } })
    assert.throws(() => checkOptionCombinations(noSecret), (err) => err instanceof ConfigConflictError && /--session-store needs --sync-secret-file/.test(err.message))
    const slow = loadConfig({ env: {}, flags: { 'session-store': 'redis://127.0.0.1:6379', 'sync-secret-file': ['farm.key'], 'session-store-timeout': '25' } })
    assert.throws(() => checkOptionCombinations(slow), (err) => err instanceof ConfigConflictError && /--session-store-timeout 25 ms must be shorter than --cache-get-timeout 25 ms/.test(err.message))
    const haproxy = loadConfig({ env: {}, flags: { 'session-store': 'redis://127.0.0.1:6379', 'sync-secret-file': ['farm.key'], terminator: 'haproxy', 'terminator-socket': '/run/haproxy.sock', 'terminator-keys': 'keys' } })
    assert.throws(() => checkOptionCombinations(haproxy), (err) => err instanceof ConfigConflictError && /--session-store does not go with --terminator haproxy/.test(err.message))
    const fine = loadConfig({ env: {}, flags: { 'session-store': 'redis://127.0.0.1:6379', 'sync-secret-file': ['farm.key'] } })
    assert.doesNotThrow(() => checkOptionCombinations(fine))
    assert.equal(fine.sessionStoreTimeout, 5)
    assert.equal(fine.sessionStorePrefix, 'tlsfleet:')
  })
})

describe('sealed session values', () => {
  test('a value opens under its own ID and farm secret, and shows neither the DER nor its secrets', () => {
    const value = sealer.seal(id, entry)
    assert.deepEqual(sealer.open(id, value), { ok: true, entry })
    assert.equal(value.indexOf(der.subarray(10)), -1, 'DER bytes in clear')
    assert.equal(value.indexOf(Buffer.from('tlsfleet')), -1)
    assert.notDeepEqual(sealer.seal(id, entry), value, 'a fresh nonce every time')
  })

  test('a value copied under another ID, sealed by another farm, altered, or garbage is refused with a reason', () => {
    const value = sealer.seal(id, entry)
    assert.deepEqual(sealer.open(crypto.randomBytes(32), value), { ok: false, reason: 'bad_tag' })
    // Another farm: a secret whose key id differs (unknown key), and one with the same key id (the tag fails).
    let other = farmKey()
    while (other.id === key.id) other = farmKey()
    assert.deepEqual(sealer.open(id, new SessionSealer(new FarmKeyRing([other])).seal(id, entry)), { ok: false, reason: 'unknown_key' })
    const sameId = new SessionSealer(new FarmKeyRing([{ id: key.id, secret: crypto.randomBytes(48) }]))
    assert.deepEqual(sealer.open(id, sameId.seal(id, entry)), { ok: false, reason: 'bad_tag' })
    for (const at of [2, 20, value.length - 1]) {
      const altered = Buffer.from(value)
      altered[at] = (altered[at] as number) ^ 1
      assert.deepEqual(sealer.open(id, altered), { ok: false, reason: 'bad_tag' }, `byte ${at}`)
    }
    assert.deepEqual(sealer.open(id, Buffer.from('garbage')), { ok: false, reason: 'malformed' })
    assert.deepEqual(sealer.open(id, Buffer.concat([Buffer.from([9]), value.subarray(1)])), { ok: false, reason: 'malformed' })
    assert.deepEqual(sealer.open(id, crypto.randomBytes(200)).ok, false)
  })

  test('during a secret change-over both secrets open, the first one seals', () => {
    const next = farmKey()
    const both = new SessionSealer(new FarmKeyRing([next, key]))
    assert.equal(both.open(id, sealer.seal(id, entry)).ok, true)
    assert.equal(both.seal(id, entry)[1], next.id)
  })
})

describe('the shared store level', () => {
  function storeWith (client: KeyValueClient, lookupTimeoutMs = 20, remainingMs: (createdAt: number) => number = () => 60_000): { store: SharedSessionStore; registry: Registry; breakers: Record<StorePath, CircuitBreaker>; causes: Array<[StorePath, string]> } {
    const registry = new Registry()
    const breakerFor = (): CircuitBreaker => new CircuitBreaker({ failureThreshold: 2, initialBackoffMs: 60_000, maxBackoffMs: 60_000 })
    const breakers = { lookups: breakerFor(), writes: breakerFor(), deletes: breakerFor() }
    const causes: Array<[StorePath, string]> = []
    const store = new SharedSessionStore({
      target: 'redis://127.0.0.1:6379/0',
      client,
      connected: () => true,
      sealer,
      breakers,
      metrics: new StoreMetrics(registry, () => ({ lookups: breakers.lookups.state, writes: breakers.writes.state, deletes: breakers.deletes.state }), () => true),
      prefix: 'farm1:',
      lookupTimeoutMs,
      remainingMs,
      lifetimeMs: 300_000,
      maxSkewMs: 5000,
      onFailure: (path, cause) => causes.push([path, typeof cause === 'string' ? cause : cause.message]),
      log: createLogger({ level: 'silent', format: 'json', name: 'test' })
    })
    return { store, registry, breakers, causes }
  }
  /** A store client keeping values and their TTLs in a Map, which the test reads. */
  function memoryClient (): { data: Map<string, { value: Buffer; ttlMs: number }>; client: KeyValueClient } {
    const data = new Map<string, { value: Buffer; ttlMs: number }>()
    const client: KeyValueClient = {
      get: async (k) => data.get(k)?.value ?? null,
      set: async (k, value, ttlMs) => { data.set(k, { value, ttlMs }) },
      del: async (k) => { data.delete(k) },
      ready: async () => 'ready' as const,
      close: async () => {}
    }
    return { data, client }
  }
  async function count (registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
    const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name)
    return metric?.values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((sum, v) => sum + v.value, 0) ?? 0
  }

  test('New is stored sealed under the farm prefix with the remaining lifetime; a lookup opens it; Del removes it', async () => {
    const { data, client } = memoryClient()
    const { store, registry } = storeWith(client)
    store.write(id, entry)
    await new Promise((resolve) => setImmediate(resolve))
    const stored = data.get(`farm1:session:${id.toString('hex')}`)
    assert.ok(stored !== undefined)
    assert.equal(stored.ttlMs, 60_000)
    assert.equal(stored.value.indexOf(der), -1)
    assert.deepEqual(await store.lookup(id), entry)
    assert.equal(await store.lookup(crypto.randomBytes(32)), undefined)
    data.set(store.key(id), { value: Buffer.from('garbage'), ttlMs: 1 })
    assert.equal(await store.lookup(id), undefined)
    assert.equal(await count(registry, 'tlsfleet_session_store_rejected_total', { reason: 'malformed' }), 1)
    store.remove(id)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(data.size, 0)
    assert.equal(await count(registry, 'tlsfleet_session_store_lookups_total', { result: 'hit' }), 1)
    assert.equal(await count(registry, 'tlsfleet_session_store_lookups_total', { result: 'miss' }), 1)
    assert.equal(await count(registry, 'tlsfleet_session_store_lookups_total', { result: 'rejected' }), 1)
    assert.equal(await count(registry, 'tlsfleet_session_store_writes_total', { op: 'set', result: 'ok' }), 1)
    assert.equal(await count(registry, 'tlsfleet_session_store_writes_total', { op: 'del', result: 'ok' }), 1)
  })

  test('a store that never answers costs at most the lookup timeout, and once the breaker opens, nothing', async () => {
    const hang: KeyValueClient = {
      get: async () => await new Promise<never>(() => {}),
      set: async () => await new Promise<never>(() => {}),
      del: async () => await new Promise<never>(() => {}),
      ready: async () => 'unreachable' as const,
      close: async () => {}
    }
    const { store, registry, breakers, causes } = storeWith(hang, 20)
    for (let i = 0; i < 2; i++) {
      const started = performance.now()
      assert.equal(await store.lookup(id), undefined)
      const took = performance.now() - started
      assert.ok(took >= 19 && took < 200, `lookup took ${took} ms`)
    }
    assert.equal(breakers.lookups.state, 'open')
    assert.deepEqual(causes.at(-1), ['lookups', 'no answer within --session-store-timeout (20 ms)'])
    const started = performance.now()
    assert.equal(await store.lookup(id), undefined)
    assert.ok(performance.now() - started < 15, 'no wait while the circuit is open (the timeout is 20 ms)')
    assert.equal(await count(registry, 'tlsfleet_session_store_lookups_total', { result: 'timeout' }), 2)
    assert.equal(await count(registry, 'tlsfleet_session_store_lookups_total', { result: 'skipped' }), 1)
    assert.equal(await count(registry, 'tlsfleet_session_store_breaker_state', { path: 'lookups', state: 'open' }), 1)
    assert.equal(await count(registry, 'tlsfleet_session_store_breaker_state', { path: 'writes', state: 'closed' }), 1)
  })

  test('lookups and writes trip apart: writes that succeed do not keep a store too slow for the lookup bound in use, nor do failing writes (OOM) stop lookups that work', async () => {
    const data = new Map<string, Buffer>()
    // Answers GETs late (a store farther than --session-store-timeout), takes every SET.
    const far: KeyValueClient = {
      get: async (k) => await new Promise((resolve) => setTimeout(() => resolve(data.get(k) ?? null), 60)),
      set: async (k, value) => { data.set(k, value) },
      del: async () => {},
      ready: async () => 'ready' as const,
      close: async () => {}
    }
    const slow = storeWith(far, 20)
    for (let i = 0; i < 2; i++) {
      slow.store.write(crypto.randomBytes(32), entry)
      await new Promise((resolve) => setImmediate(resolve))
      assert.equal(await slow.store.lookup(id), undefined)
      slow.store.write(crypto.randomBytes(32), entry)
      await new Promise((resolve) => setImmediate(resolve))
    }
    assert.equal(slow.breakers.lookups.state, 'open', 'successful writes reset the lookups\' failures')
    assert.equal(slow.breakers.writes.state, 'closed')
    assert.equal(await count(slow.registry, 'tlsfleet_session_store_writes_total', { op: 'set', result: 'ok' }), 4)

    // Full under noeviction: SET fails, GET answers.
    const full: KeyValueClient = {
      get: async () => sealer.seal(id, entry),
      set: async () => { throw new Error('OOM command not allowed when used memory > \'maxmemory\'.') },
      del: async () => {},
      ready: async () => 'ready' as const,
      close: async () => {}
    }
    const oom = storeWith(full)
    for (let i = 0; i < 3; i++) {
      oom.store.write(crypto.randomBytes(32), entry)
      await new Promise((resolve) => setImmediate(resolve))
    }
    assert.equal(oom.breakers.writes.state, 'open')
    assert.match(oom.causes.at(-1)?.[1] ?? '', /^OOM command not allowed/)
    assert.deepEqual(await oom.store.lookup(id), entry, 'lookups stopped by failing writes')
    assert.equal(await count(oom.registry, 'tlsfleet_session_store_writes_total', { op: 'set', result: 'skipped' }), 1)
  })

  test('a full store (OOM under noeviction) refuses SETs, counted as refused_oom: they open the writes\' breaker, but a Del still goes out and is counted ok', async () => {
    const deleted: string[] = []
    const full: KeyValueClient = {
      get: async () => null,
      set: async () => { throw new Error('OOM command not allowed when used memory > \'maxmemory\'.') },
      del: async (k) => { deleted.push(k) },
      ready: async () => 'ready' as const,
      close: async () => {}
    }
    const { store, registry, breakers } = storeWith(full)
    for (let i = 0; i < 3; i++) {
      store.write(crypto.randomBytes(32), entry)
      await new Promise((resolve) => setImmediate(resolve))
    }
    assert.equal(breakers.writes.state, 'open')
    assert.equal(await count(registry, 'tlsfleet_session_store_writes_total', { op: 'set', result: 'refused_oom' }), 2)
    assert.equal(await count(registry, 'tlsfleet_session_store_writes_total', { op: 'set', result: 'error' }), 0)
    store.remove(id)
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(deleted, [store.key(id)], 'the Del of a bad session was skipped: the value stays for other nodes')
    assert.equal(await count(registry, 'tlsfleet_session_store_writes_total', { op: 'del', result: 'ok' }), 1)
    assert.equal(await count(registry, 'tlsfleet_session_store_writes_total', { op: 'del', result: 'skipped' }), 0)
    assert.equal(store.status().deletes, 'closed')
  })

  test('a value dated more than --sync-max-skew ahead is refused (future); one within it is a hit; a write\'s TTL never exceeds the session lifetime', async () => {
    const { data, client } = memoryClient()
    // The clock of L2: lifetime 300 s, now = 1_700_000_000 s.
    const now = 1_700_000_000
    const { store, registry } = storeWith(client, 20, (createdAt) => createdAt * 1000 + 300_000 - now * 1000)
    const ahead = (seconds: number): { der: Buffer; createdAt: number } => ({ der, createdAt: now + seconds })
    data.set(store.key(id), { value: sealer.seal(id, ahead(3600)), ttlMs: 0 })
    assert.equal(await store.lookup(id), undefined, 'an hour ahead: accepted')
    assert.equal(await count(registry, 'tlsfleet_session_store_rejected_total', { reason: 'future' }), 1)
    data.set(store.key(id), { value: sealer.seal(id, ahead(4)), ttlMs: 0 })
    assert.deepEqual(await store.lookup(id), ahead(4), 'within the skew')
    store.write(id, ahead(3600))
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(data.get(store.key(id))?.ttlMs, 300_000, 'PX capped at the session lifetime')
  })

  test('a value over the bound is read only up to it and refused as malformed', async () => {
    let asked = 0
    const huge: KeyValueClient = {
      get: async (_k, maxBytes) => { asked = maxBytes; return Buffer.alloc(maxBytes, 1) },
      set: async () => {},
      del: async () => {},
      ready: async () => 'ready' as const,
      close: async () => {}
    }
    const { store, registry } = storeWith(huge)
    assert.equal(await store.lookup(id), undefined)
    assert.equal(asked, MAX_VALUE_BYTES)
    assert.equal(await count(registry, 'tlsfleet_session_store_rejected_total', { reason: 'malformed' }), 1)
  })

  test('a lookup already out when the lookups\' breaker opened, answering late (within its timeout), does not close it', async () => {
    let calls = 0
    // The first GET answers (a miss) after 30 ms; the next two fail at once: the breaker opens meanwhile.
    const client: KeyValueClient = {
      get: async () => {
        if (++calls === 1) return await new Promise<null>((resolve) => setTimeout(resolve, 30, null))
        throw new Error('Connection is closed.')
      },
      set: async () => {},
      del: async () => {},
      ready: async () => 'ready' as const,
      close: async () => {}
    }
    const { store, breakers } = storeWith(client, 200)
    const late = store.lookup(id)
    assert.equal(await store.lookup(id), undefined)
    assert.equal(await store.lookup(id), undefined)
    assert.equal(breakers.lookups.state, 'open')
    assert.equal(await late, undefined)
    assert.equal(breakers.lookups.state, 'open', 'an answer from before the breaker opened closed it')
  })
})
