import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import path from 'node:path'
import tls from 'node:tls'
import fs from 'node:fs'
import { after, before, test } from 'node:test'
import { RedisServer } from '../../src/lab/redis-server.js'
import { SessionSealer } from '../../src/store/sealed-session.js'
import { FarmKeyRing } from '../../src/sync/farm-keys.js'
import { loadFarmSecrets } from '../../src/sync/farm-secret.js'
import { tlsHandshake } from '../../src/lab/tls-client.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { startDelayProxy } from '../helpers/delay-proxy.js'
import { sClient } from '../helpers/openssl.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

// A store that is slow, full or away, with a real redis-server: what the operator sees.
const dir = tempDir()
let redis: RedisServer
let secret: string
let cert: string

before(async () => {
  secret = writeFarmSecret(dir)
  cert = makeCertificate(dir, 'node', ['localhost'])
  redis = await RedisServer.start()
})

after(async () => { await redis?.stop() })

async function nodeWith (name: string, store: string, extra: string[] = []): Promise<{ node: RunningNode; port: number }> {
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--cert', cert, '--state-dir', path.join(dir, name),
    '--sync-secret-file', secret, '--session-store', store, ...extra], { adminPort: admin, timeoutMs: 60_000 })
  return { node, port }
}

/** A server of our certificate that is not the node: the sessions it makes are unknown to the node's L2. */
async function withForeignServer<T> (use: (port: number) => Promise<T>): Promise<T> {
  const server = tls.createServer({ key: fs.readFileSync(cert), cert: fs.readFileSync(cert), maxVersion: 'TLSv1.2' }, (s) => s.end())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    return await use((server.address() as { port: number }).port)
  } finally {
    server.close()
  }
}

/** A TLS 1.2 session (by ID) from another server: offered to the node, it misses L2 and asks the store. */
async function foreignSession (): Promise<Buffer> {
  return await withForeignServer(async (port) => {
    const made = await tlsHandshake({ host: '127.0.0.1', port, version: '1.2', tickets: false, timeoutMs: 5000 })
    assert.ok(made.session !== undefined, made.error)
    return made.session
  })
}

const FAILING = 'session store failing: lookups stop (full handshakes for sessions not in L2) and are retried with back-off'
const ANSWERS_AGAIN = 'session store answers again: lookups resume'

test('a store whose round trip straddles --session-store-timeout (0-200 ms of jitter, 100 ms bound): the failing/answers-again lines stay few, not two a second', async () => {
  // Wide enough that a loaded machine's own delays (a few ms to tens of ms in a parallel test
  // run) do not push every answer past the bound: 0-20 ms against 10 ms did under load.
  const proxy = await startDelayProxy({ host: redis.host, port: redis.port }, 200)
  const n = await nodeWith('jitter', `redis://127.0.0.1:${proxy.port}/0`, ['--session-store-timeout', '100', '--cache-get-timeout', '400'])
  try {
    const session = await foreignSession()
    const started = Date.now()
    // 6 s, longer (12 s at most) until the store has both answered in time and timed out: on a
    // loaded machine the lookups the breaker lets through may all come back late for a while.
    let straddled = false
    const counts = async (): Promise<[number, number]> => [
      await n.node.metric('tlsfleet_session_store_lookups_total', { result: 'timeout' }),
      await n.node.metric('tlsfleet_session_store_lookups_total', { result: 'miss' })
    ]
    const going = (): boolean => Date.now() < started + 6000 || (!straddled && Date.now() < started + 12_000)
    let handshakes = 0
    // Several clients at once: lookups overlap, so some are still out when the breaker opens.
    await Promise.all([
      ...Array.from({ length: 4 }, async () => {
        while (going()) {
          const r = await tlsHandshake({ host: '127.0.0.1', port: n.port, version: '1.2', tickets: false, session, timeoutMs: 5000 })
          assert.ok(r.ok, r.error)
          handshakes++
          // Paced (~150 handshakes/s in all): flat out, this 2-core machine itself pushes every lookup past the bound.
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
      }),
      (async () => {
        while (going()) {
          const [timeouts, answered] = await counts()
          straddled = timeouts >= 5 && answered >= 1
          await new Promise((resolve) => setTimeout(resolve, 500))
        }
      })()
    ])
    const elapsed = Date.now() - started
    const [timeouts, answered] = await counts()
    assert.ok(timeouts >= 5 && answered >= 1, `not straddling the bound: ${timeouts} timeouts, ${answered} answers of ${handshakes} handshakes in ${elapsed} ms`)
    const lines = n.node.logs.filter((l) => l.msg === FAILING || l.msg === ANSWERS_AGAIN).map((l) => `${String(l.time)} ${String(l.msg).slice(0, 30)}`)
    assert.ok(lines.length >= 1, 'the store never said failing')
    // One "failing"; at most one more pair if it held for the stable time once (two in a run
    // prolonged to 12 s). Was ~2 a second: 12 in 6 s.
    const allowed = elapsed <= 6500 ? 4 : 6
    assert.ok(lines.length <= allowed, `${lines.length} lines in ${elapsed} ms:\n${lines.join('\n')}`)
  } finally {
    await n.node.stop()
    await proxy.close()
  }
})

test('a store down at start: connected false everywhere (health still 200); Redis comes up: connected within seconds with one log line; Redis killed: false again, and said', async () => {
  const own = await RedisServer.start()
  await own.kill() // its port now closed; start() brings it back on the same port
  const n = await nodeWith('connection', own.url)
  try {
    const view = async (): Promise<{ cache: { connected: boolean; lookups: string }; state: { connected: boolean } | undefined; gauge: number; health: number }> => ({
      cache: (await (await fetch(`${n.node.adminUrl}/v1/cache`)).json() as { store: { connected: boolean; lookups: string } }).store,
      state: (await (await fetch(`${n.node.adminUrl}/v1/state`)).json() as { store?: { connected: boolean } }).store,
      gauge: await n.node.metric('tlsfleet_session_store_connected'),
      health: (await fetch(`${n.node.adminUrl}/health`)).status
    })
    const down = await view()
    assert.deepEqual([down.cache.connected, down.state?.connected, down.gauge, down.health], [false, false, 0, 200])
    const start = n.node.logs.find((l) => l.msg === 'session store not reachable at start: serving without it, reconnecting in the background')
    assert.match(String(start?.cause), /ECONNREFUSED/)

    await own.start()
    const line = await n.node.waitForLog((l) => l.msg === 'session store connected', 5000)
    assert.equal(line.store, own.url)
    // /metrics is rebuilt at most once a second.
    await eventually(async () => { const v = await view(); return v.cache.connected && v.state?.connected === true && v.gauge === 1 }, 3000, 'connected in /v1/cache, /v1/state and the gauge')

    await own.kill()
    const lost = await n.node.waitForLog((l) => l.msg === 'session store connection lost: serving without it, reconnecting in the background', 5000)
    assert.equal(typeof lost.cause, 'string')
    await eventually(async () => { const v = await view(); return !v.cache.connected && v.state?.connected === false && v.gauge === 0 && v.health === 200 }, 3000, 'not connected again, still healthy')
    // One line each way, not one per reconnection attempt.
    await new Promise((resolve) => setTimeout(resolve, 1500))
    assert.equal(n.node.logs.filter((l) => l.msg === 'session store connection lost: serving without it, reconnecting in the background').length, 1)
    assert.equal(n.node.logs.filter((l) => l.msg === 'session store connected').length, 1)
  } finally {
    await n.node.stop()
    await own.stop()
  }
})

test('breakers opened while Redis was down, then no traffic: once Redis is back they report half_open, not open, within their back-off, without a call sent; the next lookup closes them', async () => {
  const own = await RedisServer.start()
  const n = await nodeWith('idle-breakers', own.url)
  try {
    type Cache = { connected: boolean; lookups: string; writes: string }
    const cache = async (): Promise<Cache> => (await (await fetch(`${n.node.adminUrl}/v1/cache`)).json() as { store: Cache }).store
    const session = await foreignSession()
    const handshake = async (): Promise<void> => { assert.ok((await tlsHandshake({ host: '127.0.0.1', port: n.port, version: '1.2', tickets: false, session, timeoutMs: 5000 })).ok) }
    await own.kill()
    await eventually(async () => !(await cache()).connected, 5000, 'not connected')
    // Each handshake offers a session the node does not hold (a lookup) and makes a new one (a write).
    let opened = await cache()
    for (let i = 0; i < 40 && (opened.lookups !== 'open' || opened.writes !== 'open'); i++) { await handshake(); opened = await cache() }
    assert.deepEqual([opened.lookups, opened.writes], ['open', 'open'])
    const calls = async (): Promise<number> => {
      let sum = 0
      for (const result of ['hit', 'miss', 'timeout', 'error', 'rejected', 'skipped']) sum += await n.node.metric('tlsfleet_session_store_lookups_total', { result })
      for (const result of ['ok', 'error', 'refused_oom', 'skipped']) sum += await n.node.metric('tlsfleet_session_store_writes_total', { op: 'set', result })
      return sum
    }
    // /metrics is rebuilt at most once a second: past that, it holds the last handshake's counts.
    await new Promise((resolve) => setTimeout(resolve, 1100))
    const idle = await calls()
    await own.start()
    await eventually(async () => (await cache()).connected, 5000, 'connected again')
    // The back-off is 2 s at most: the report moves by then, with no traffic to probe.
    await eventually(async () => { const c = await cache(); return c.lookups === 'half_open' && c.writes === 'half_open' }, 4000, 'half_open in /v1/cache while idle')
    await eventually(async () => await n.node.metric('tlsfleet_session_store_breaker_state', { path: 'lookups', state: 'half_open' }) === 1 &&
      await n.node.metric('tlsfleet_session_store_breaker_state', { path: 'lookups', state: 'open' }) === 0, 3000, 'half_open in the gauge')
    assert.equal(await calls(), idle, 'nothing was sent to the store, nor skipped, while idle')
    // The next handshake's lookup and write are the probes: both close.
    await handshake()
    await eventually(async () => { const c = await cache(); return c.lookups === 'closed' && c.writes === 'closed' }, 3000, 'closed after one handshake')
  } finally {
    await n.node.stop()
    await own.stop()
  }
})

test('a full store (maxmemory, noeviction): SETs are refused and counted as refused_oom, yet the Del of a bad session still reaches Redis', async () => {
  const full = await RedisServer.start('127.0.0.1', { args: ['--maxmemory', '4mb', '--maxmemory-policy', 'noeviction'] })
  try {
    // A session ID the node does not know, whose value in the store is ours (sealed with the
    // farm secret) but not a session OpenSSL can read: offered, it is found bad and deleted.
    const sessFile = path.join(dir, 'bad.sess')
    const made = await withForeignServer(async (port) => await sClient({ port, tls: '1.2', sessOut: sessFile, extra: ['-no_ticket'] }))
    const idHex = /Session-ID: ([0-9A-F]+)/.exec(made.output)?.[1]?.toLowerCase()
    assert.ok(idHex !== undefined && idHex.length === 64, made.output)
    const key = `tlsfleet:session:${idHex}`
    const [farmKey] = loadFarmSecrets([secret])
    assert.ok(farmKey !== undefined)
    const sealed = new SessionSealer(new FarmKeyRing([farmKey])).seal(Buffer.from(idHex, 'hex'), { der: crypto.randomBytes(100), createdAt: Math.floor(Date.now() / 1000) })
    full.cli(['SET', key], sealed)
    // Fill it up with junk until Redis refuses a write.
    for (let i = 0; i < 50 && !full.cli(['SET', 'junk-probe', 'x']).toString().startsWith('OOM'); i++) {
      full.cli(['EVAL', `for i=1,2000 do redis.call('SET', 'junk:${i}:' .. i, string.rep('x', 1000)) end`, '0'])
    }
    assert.match(full.cli(['SET', 'junk-probe', 'x']).toString(), /^OOM/)

    const n = await nodeWith('full', full.url)
    try {
      // New sessions: their SETs are refused (five open the writes' breaker).
      for (let i = 0; i < 6; i++) assert.ok((await tlsHandshake({ host: '127.0.0.1', port: n.port, version: '1.2', tickets: false, timeoutMs: 5000 })).ok)
      await n.node.waitForLog((l) => String(l.msg).startsWith('session store refuses writes') && /^OOM/.test(String(l.cause)), 5000)
      // The bad session offered: found in the store, refused by OpenSSL, deleted farm-wide.
      const offered = await sClient({ port: n.port, tls: '1.2', sessIn: sessFile, extra: ['-no_ticket'] })
      assert.match(offered.output, /^New, TLSv1\.2/m, 'a full handshake')
      await eventually(() => full.cli(['EXISTS', key]).toString().trim() === '0', 5000, 'the bad value deleted from the full store')
      assert.equal(await n.node.metric('tlsfleet_session_store_writes_total', { op: 'del', result: 'skipped' }), 0)
      await eventually(async () => await n.node.metric('tlsfleet_session_store_writes_total', { op: 'set', result: 'refused_oom' }) >= 5, 5000, 'SETs counted as refused_oom')
      assert.equal(await n.node.metric('tlsfleet_session_store_writes_total', { op: 'set', result: 'error' }), 0)
    } finally {
      await n.node.stop()
    }
  } finally {
    await full.stop()
  }
})
