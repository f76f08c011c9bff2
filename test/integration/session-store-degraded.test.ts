import assert from 'node:assert/strict'
import path from 'node:path'
import tls from 'node:tls'
import fs from 'node:fs'
import { after, before, test } from 'node:test'
import { RedisServer } from '../../src/lab/redis-server.js'
import { tlsHandshake } from '../../src/lab/tls-client.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { startDelayProxy } from '../helpers/delay-proxy.js'
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

/** A TLS 1.2 session (by ID) from another server: offered to the node, it misses L2 and asks the store. */
async function foreignSession (): Promise<Buffer> {
  const server = tls.createServer({ key: fs.readFileSync(cert), cert: fs.readFileSync(cert), maxVersion: 'TLSv1.2' }, (s) => s.end())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const made = await tlsHandshake({ host: '127.0.0.1', port: (server.address() as { port: number }).port, version: '1.2', tickets: false, timeoutMs: 5000 })
    assert.ok(made.session !== undefined, made.error)
    return made.session
  } finally {
    server.close()
  }
}

const FAILING = 'session store failing: lookups stop (full handshakes for sessions not in L2) and are retried with back-off'
const ANSWERS_AGAIN = 'session store answers again: lookups resume'

test('a store whose round trip straddles --session-store-timeout (0-20 ms of jitter, 10 ms bound): the failing/answers-again lines stay few, not two a second', async () => {
  const proxy = await startDelayProxy({ host: redis.host, port: redis.port }, 20)
  const n = await nodeWith('jitter', `redis://127.0.0.1:${proxy.port}/0`, ['--session-store-timeout', '10'])
  try {
    const session = await foreignSession()
    const end = Date.now() + 6000
    let handshakes = 0
    // Several clients at once: lookups overlap, so some are still out when the breaker opens.
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (Date.now() < end) {
        const r = await tlsHandshake({ host: '127.0.0.1', port: n.port, version: '1.2', tickets: false, session, timeoutMs: 5000 })
        assert.ok(r.ok, r.error)
        handshakes++
        // Paced (~150 handshakes/s in all): flat out, this 2-core machine itself pushes every lookup past the bound.
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }))
    const timeouts = await n.node.metric('tlsfleet_session_store_lookups_total', { result: 'timeout' })
    const answered = await n.node.metric('tlsfleet_session_store_lookups_total', { result: 'miss' })
    assert.ok(timeouts >= 5 && answered >= 1, `not straddling the bound: ${timeouts} timeouts, ${answered} answers of ${handshakes} handshakes`)
    const lines = n.node.logs.filter((l) => l.msg === FAILING || l.msg === ANSWERS_AGAIN).map((l) => `${String(l.time)} ${String(l.msg).slice(0, 30)}`)
    assert.ok(lines.length >= 1, 'the store never said failing')
    // One "failing"; at most one more pair if it held for the stable time once. Was ~2 a second.
    assert.ok(lines.length <= 4, `${lines.length} lines in 6 s:\n${lines.join('\n')}`)
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
