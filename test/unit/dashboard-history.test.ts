import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Registry, Counter } from 'prom-client'
import { DashboardHistory, type CounterReading } from '../../src/admin/dashboard-history.js'
import { certificateAttention } from '../../src/admin/certificate-attention.js'
import { dashboardCertificates, NodeDashboard } from '../../src/admin/node-dashboard.js'
import type { CertificateBody } from '../../src/admin/schemas.js'
import type { LoadSample } from '../../src/agent/load-sampler.js'
import { TicketKeySchedule } from '../../src/tls/ticket-keys.js'

type Worker = CounterReading['workers'][number]

function worker (pid: number, full: number, resumed: number, hits = 0, misses = 0): Worker {
  return { pid, handshakes: { full, resumed }, l1: { entries: 0, bytes: 0, hits, misses } }
}

function reading (second: number, workers: Worker[], extra: Partial<CounterReading> = {}): CounterReading {
  return { at: 1_000_000 + second * 1000, workers, l2: { hits: 0, misses: 0 }, sync: {}, ...extra }
}

test('one point per interval: handshakes per second from the workers\' counters, per process', () => {
  const h = new DashboardHistory()
  assert.equal(h.record(reading(0, [worker(1, 100, 50), worker(2, 10, 5)])), undefined, 'the first reading only sets the base')
  h.record(reading(1, [worker(1, 110, 70), worker(2, 12, 9)]))
  h.record(reading(3, [worker(1, 130, 70), worker(2, 12, 29)]))
  const s = h.series()
  assert.deepEqual(s.full, [12, 10])
  assert.deepEqual(s.resumed, [24, 10], 'a 2 s interval halves the count')
  assert.deepEqual(s.t, [1001, 1003])
})

test('a worker that misses a round, dies or is replaced makes neither a spike nor a negative rate', () => {
  const h = new DashboardHistory()
  h.record(reading(0, [worker(1, 100, 0), worker(2, 100, 0)]))
  h.record(reading(1, [worker(1, 110, 0)])) // pid 2 did not answer in time
  h.record(reading(2, [worker(1, 120, 0), worker(2, 120, 0)])) // pid 2 is back: its 20 over two seconds
  h.record(reading(3, [worker(1, 130, 0), worker(3, 4, 0)])) // pid 2 died, pid 3 replaced it and did 4
  h.record(reading(4, [worker(1, 125, 0), worker(3, 5, 0)])) // a counter that went back counts as nothing
  assert.deepEqual(h.series().full, [10, 30, 14, 1])
})

test('cache lookups per level and sync datagrams by result, differenced; windows sum them', () => {
  const h = new DashboardHistory()
  h.record(reading(0, [worker(1, 0, 0, 5, 5)], { l2: { hits: 1, misses: 1 }, sync: { 'in:accepted': 10, 'out:sent': 10, 'in:bad_tag': 0, 'in:own': 3 } }))
  h.record(reading(1, [worker(1, 0, 0, 15, 7)], { l2: { hits: 3, misses: 1 }, sync: { 'in:accepted': 14, 'out:sent': 12, 'in:bad_tag': 2, 'in:own': 9 } }))
  h.record(reading(2, [worker(1, 0, 0, 16, 7)], { l2: { hits: 3, misses: 2 }, sync: { 'in:accepted': 14, 'out:sent': 13, 'in:bad_tag': 2, 'in:own': 9, 'out:send_error': 1 } }))
  const s = h.series()
  assert.deepEqual(s.syncIn, [4, 0])
  assert.deepEqual(s.syncRejected, [2, 0], 'own multicast echoes are not rejections')
  assert.deepEqual(s.syncOut, [2, 1])
  assert.deepEqual(s.syncSendErrors, [0, 1])
  const w = h.window(60)
  assert.equal(w.seconds, 2)
  assert.deepEqual(w.cache, { l1: { hits: 11, misses: 2 }, l2: { hits: 2, misses: 1 } })
  assert.equal(w.sync['out:sent'], 3)
  assert.deepEqual(h.window(1).cache.l1, { hits: 1, misses: 0 }, 'only the last second')
})

test('the history keeps its last `capacity` points', () => {
  const h = new DashboardHistory(5)
  for (let i = 0; i <= 20; i++) h.record(reading(i, [worker(1, i * 3, 0)]))
  assert.equal(h.size, 5)
  assert.deepEqual(h.series().t, [1016, 1017, 1018, 1019, 1020])
  assert.deepEqual(h.series().full, [3, 3, 3, 3, 3])
})

test('the node dashboard: hit ratios, sync counters from the registry, and the ticket schedule', async () => {
  const registry = new Registry()
  const packets = new Counter({ name: 'tlsfleet_sync_packets_total', help: 'x', labelNames: ['direction', 'result'] as const, registers: [registry] })
  packets.inc({ direction: 'out', result: 'sent' }, 7)
  packets.inc({ direction: 'in', result: 'replay' }, 0)
  const now = 3600 * 1000 * 500 + 120_000 // two minutes into epoch 500
  const schedule = new TicketKeySchedule({ secret: Buffer.alloc(32, 7), rotationSeconds: 3600, lifetimeSeconds: 300, now: () => now })
  const dash = new NodeDashboard({ registry, intervalSeconds: 1, tickets: { schedule, farmWide: true, farmSecrets: 1 }, now: () => now })
  const sample = (second: number, hits: number): LoadSample => ({
    at: new Date(now - 2000 + second * 1000), listening: 1, eventLoopUtilization: 0.1, handshakesPerSecond: 0, connections: 0, handshakes: { full: 0, resumed: 0 },
    workers: [{ pid: 9, eventLoopUtilization: 0.1, activeConnections: 0, handshakes: { full: 0, resumed: hits }, l1: { entries: 1, bytes: 10, hits, misses: 1 } }]
  })
  await dash.record(sample(0, 1), { hits: 0, misses: 0 })
  packets.inc({ direction: 'out', result: 'sent' }, 3)
  await dash.record(sample(1, 4), { hits: 1, misses: 3 })
  const certificates = { terminator: 'tlsfleet' as const, ocspStapling: false, certificates: [] }
  const body = await dash.body({
    state: { node: 'n', state: 'ready', health: 'up', effective: 'ready', agentReply: 'ready up 100%', weightPercent: 100, workers: { configured: 1, listening: 1 }, connections: 0, handshakes: { full: 0, resumed: 4, perSecond: 3 } },
    cache: { l2: { entries: 2, bytes: 20, hits: 1, misses: 3, maxEntries: 10, maxBytes: 100 }, l1: [{ pid: 9, entries: 1, bytes: 10, hits: 4, misses: 1 }] },
    peers: { sync: '127.0.0.1:1', peers: [] },
    certificates
  })
  assert.deepEqual(body.cache.map((c) => [c.level, c.hitRatio, c.lastMinute.hitRatio]), [['l1', 0.8, 1], ['l2', 0.25, 0.25]])
  assert.deepEqual(body.sync.packets.find((p) => p.result === 'sent'), { direction: 'out', result: 'sent', total: 10, lastMinute: 3 })
  assert.deepEqual(body.history.resumed, [3])
  assert.deepEqual(body.lastMinute, { seconds: 1, full: 0, resumed: 3 })
  assert.equal(body.tickets.generation, 500)
  assert.equal(body.tickets.keyName, schedule.generation(500).name.toString('hex'))
  assert.equal(body.tickets.secondsToNextRotation, 3480)
  assert.equal(body.tickets.nextRotation, new Date(3600 * 1000 * 501).toISOString())
  assert.deepEqual(body.tickets.acceptedGenerations, [501, 500, 499], 'the previous key while its tickets live (2 min after the rotation, 5 min lifetime)')
  assert.equal(body.haproxy, undefined)
  const off = await new NodeDashboard({ registry: new Registry(), intervalSeconds: 1 }).body({ state: body.node, cache: { l2: { entries: 0, bytes: 0, hits: 0, misses: 0, maxEntries: 1, maxBytes: 1 }, l1: [] }, peers: { sync: 'off', peers: [] }, certificates })
  assert.deepEqual(off.tickets, { enabled: false })
  assert.deepEqual(off.sync.packets, [])
  assert.equal(off.cache[0]?.hitRatio, null, 'no lookups: no ratio, not 0')
})

test('a node whose TLS a local HAProxy terminates (no workers): the history follows the node totals', async () => {
  const dash = new NodeDashboard({ registry: new Registry(), intervalSeconds: 1 })
  const sample = (second: number, full: number, resumed: number): LoadSample => ({
    at: new Date(1_000_000 + second * 1000), listening: 0, workers: [], eventLoopUtilization: 0.2, handshakesPerSecond: 0, connections: 0, handshakes: { full, resumed }
  })
  await dash.record(sample(0, 100, 1000), { hits: 0, misses: 0 })
  await dash.record(sample(1, 104, 1030), { hits: 0, misses: 0 })
  await dash.record(sample(2, 104, 1050), { hits: 0, misses: 0 })
  assert.deepEqual(dash.history.series().full, [4, 0])
  assert.deepEqual(dash.history.series().resumed, [30, 20])
})

test('the dashboard lists at most 50 certificates: those without a good staple and the soonest to expire, in load order, and says how many more', () => {
  const cert = (i: number, expiresInDays: number, status: 'good' | 'none' = 'good'): CertificateBody => ({ file: `/c/${i}.pem`, names: [`n${i}.test`], keyType: 'rsa', notAfter: '2027-01-01T00:00:00.000Z', expiresInDays, ocsp: { status }, attention: certificateAttention(expiresInDays, { status }) })
  const all = Array.from({ length: 60 }, (_, i) => cert(i, 100 + i))
  all[55] = cert(55, 300, 'none')
  all[59] = cert(59, 3)
  const body = dashboardCertificates({ terminator: 'tlsfleet', ocspStapling: true, certificates: all }, 50)
  assert.equal(body.omitted, 10)
  assert.equal(body.certificates.length, 50)
  const files = body.certificates.map((c) => c.file)
  assert.ok(files.includes('/c/55.pem') && files.includes('/c/59.pem'), 'the unstapled one and the soonest to expire are kept')
  assert.deepEqual(files.slice(0, 3), ['/c/0.pem', '/c/1.pem', '/c/2.pem'], 'load order')
  assert.ok(!files.includes('/c/50.pem'))
  const few = { terminator: 'tlsfleet' as const, ocspStapling: false, certificates: all.slice(0, 3) }
  assert.equal(dashboardCertificates(few, 50), few)
})
