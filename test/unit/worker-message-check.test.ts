import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import tls from 'node:tls'
import v8 from 'node:v8'
import { test } from 'node:test'
import { DELS_PER_SECOND, L2Responder, MAX_PENDING_GETS, type L2Notice } from '../../src/cache/l2-responder.js'
import { PrimarySessionCache } from '../../src/cache/primary-session-cache.js'
import { WorkerMetrics } from '../../src/metrics/worker-metrics.js'
import { checkWorkerMessage, MAX_BATCH_UPDATES, MAX_METRIC_FAMILIES, MAX_METRIC_LABEL_CHARS, MAX_METRIC_SAMPLES, type CheckedMessage } from '../../src/node/worker-message-check.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'

/** A TLS 1.2 session as a worker's OpenSSL makes it: its ID and DER, from a real handshake. */
async function realSession (): Promise<{ id: Buffer; der: Buffer }> {
  const pem = fs.readFileSync(makeCertificate(tempDir(), 'ipc', ['localhost']), 'utf8')
  const server = tls.createServer({ key: pem, cert: pem, maxVersion: 'TLSv1.2', secureOptions: crypto.constants.SSL_OP_NO_TICKET })
  const made = new Promise<{ id: Buffer; der: Buffer }>((resolve) => server.on('newSession', (id: Buffer, der: Buffer, done: () => void) => { resolve({ id, der }); done() }))
  server.on('secureConnection', (socket) => socket.end())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const client = tls.connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, rejectUnauthorized: false })
  client.on('data', () => {})
  client.on('error', () => {})
  const session = await made
  client.destroy()
  server.close()
  return session
}

const NOW = Math.floor(Date.now() / 1000)
/** As the primary receives it: through V8's serialisation, as the IPC channel carries it. */
const overIpc = (message: unknown): unknown => v8.deserialize(v8.serialize(message))
const check = (message: unknown): CheckedMessage => checkWorkerMessage(overIpc(message), NOW)
const reasonOf = (checked: CheckedMessage): string | undefined => 'refused' in checked ? checked.refused.reason : undefined

const { id, der } = await realSession()

test('a New, Get and Del as a worker sends them pass, as they came', () => {
  const newOne = { t: 'session-new', id, der, createdAt: NOW }
  const checked = check(newOne)
  assert.equal(checked.ok, true)
  assert.equal('refused' in checked, false)
  assert.ok(checked.ok && checked.message.t === 'session-new' && checked.message.der.equals(der))
  assert.deepEqual(reasonOf(check({ t: 'session-get', req: 7, id })), undefined)
  assert.deepEqual(reasonOf(check({ t: 'session-del', id })), undefined)
  const batch = check({ t: 'session-batch', updates: [newOne, { t: 'session-del', id }] })
  assert.ok(batch.ok && batch.message.t === 'session-batch' && batch.message.updates.length === 2 && !('refused' in batch))
})

test('a malformed message is refused with its reason, never thrown on', () => {
  const refusedAs = (reason: string, message: unknown, why: string): void => {
    const checked = check(message)
    assert.equal(checked.ok, false, why)
    assert.equal(reasonOf(checked), reason, why)
  }
  for (const junk of [null, 5, 'ready', [], { t: 5 }, {}]) refusedAs('malformed', junk, JSON.stringify(junk))
  refusedAs('malformed', { t: 'x'.repeat(10_000) }, 'an unknown type')
  refusedAs('malformed', { t: 'listener', index: -1 }, 'a negative listener index')
  refusedAs('malformed', { t: 'listen-failed', address: 1, code: '', message: '' }, 'listen-failed without strings')
  // Each of these threw in the primary's event loop and stopped the node.
  refusedAs('session', { t: 'session-new', id: 5, der, createdAt: NOW }, 'a number for an ID (toString radix)')
  refusedAs('session', { t: 'session-new', id: 'abc', der, createdAt: NOW }, 'a string for an ID')
  refusedAs('session', { t: 'session-new', id, der: 'hello', createdAt: NOW }, 'a string for the DER')
  refusedAs('session', { t: 'session-get', req: 1 }, 'a Get without an ID')
  refusedAs('session', { t: 'session-get', req: 'x', id }, 'a Get without a request number')
  refusedAs('session', { t: 'session-batch', updates: 5 }, 'a batch that is not a list')
  refusedAs('session', { t: 'session-batch', updates: [] }, 'an empty batch')
  // Bounds: what the sync and OpenSSL take.
  refusedAs('session', { t: 'session-new', id: Buffer.alloc(0), der, createdAt: NOW }, 'an empty ID')
  refusedAs('session', { t: 'session-del', id: Buffer.alloc(1000, 1) }, 'a 1000-byte ID')
  refusedAs('session', { t: 'session-new', id, der: Buffer.alloc(70_000, 0x30), createdAt: NOW }, 'a 70 kB session')
  refusedAs('session', { t: 'session-new', id, der, createdAt: NaN }, 'a NaN date')
  refusedAs('session', { t: 'session-new', id, der, createdAt: -1 }, 'a negative date')
  refusedAs('session', { t: 'session-new', id, der, createdAt: NOW + 3600 }, 'a date an hour ahead (it would outlive the lifetime)')
  refusedAs('session', { t: 'session-new', id, der, createdAt: 0xffffffff }, 'the last Unix second of u32')
  // What would have been sealed for every peer: bytes that are no session, or another session's.
  refusedAs('session', { t: 'session-new', id, der: Buffer.from('not a session at all'), createdAt: NOW }, 'garbage as the session')
  refusedAs('session', { t: 'session-new', id: Buffer.alloc(32, 7), der, createdAt: NOW }, 'a real session under another ID')
  refusedAs('session', { t: 'session-new', id, der: der.subarray(0, der.length - 1), createdAt: NOW }, 'a truncated session')
})

test('a batch keeps its good updates and refuses the others; nothing but New and Del is in a batch', () => {
  const good = { t: 'session-del', id }
  const checked = check({ t: 'session-batch', updates: [good, { t: 'session-del', id: 5 }, { t: 'session-get', req: 1, id }, good] })
  assert.ok(checked.ok && checked.message.t === 'session-batch')
  assert.equal(checked.message.updates.length, 2)
  assert.ok('refused' in checked && checked.refused.reason === 'session' && /and 1 more/.test(checked.refused.detail), JSON.stringify(checked))
  // Nested batches were handled recursively: deep enough, a stack overflow in the primary.
  let nested: unknown = good
  for (let i = 0; i < 50; i++) nested = { t: 'session-batch', updates: [nested] }
  assert.equal(reasonOf(check(nested)), 'session')
  assert.equal(reasonOf(check({ t: 'session-batch', updates: Array.from({ length: MAX_BATCH_UPDATES + 1 }, () => good) })), 'session')
})

/** A report as a worker sends it, with real metrics JSON. */
async function report (): Promise<Record<string, unknown>> {
  const metrics = await new WorkerMetrics().registry.getMetricsAsJSON()
  return { t: 'report', req: 3, pid: 1234, metrics, l1: { entries: 1, hits: 2, misses: 3, bytes: 400 }, eventLoopUtilization: 0.25, activeConnections: 2, connectionLimit: 0, handshakes: { full: 5, resumed: 6 } }
}

test('a report with real metrics passes; its pid is never taken from it', async () => {
  const checked = check(await report())
  assert.ok(checked.ok && checked.message.t === 'report', JSON.stringify(checked).slice(0, 300))
  assert.equal(checked.message.pid, 0, 'the pool files it under the worker\'s real pid')
  assert.equal(checked.message.final, undefined)
  const final = check({ ...await report(), final: true })
  assert.ok(final.ok && final.message.t === 'report' && final.message.final === true)
})

test('a report whose figures are not counts, or whose metrics are not metrics or too many, is refused', async () => {
  const base = await report()
  const refused = (change: Record<string, unknown>, why: string): void => {
    assert.equal(reasonOf(check({ ...base, ...change })), 'report', why)
  }
  refused({ eventLoopUtilization: NaN }, 'NaN ELU (the agent\'s weight, /v1/state)')
  refused({ eventLoopUtilization: 7 }, 'an ELU above 1')
  refused({ activeConnections: -5 }, 'negative connections')
  refused({ connectionLimit: Infinity }, 'an infinite limit')
  refused({ handshakes: { full: 1, resumed: NaN } }, 'NaN handshakes (kept in the retired totals for good)')
  refused({ handshakes: { full: 1 } }, 'a count missing')
  refused({ handshakes: { full: 1e300, resumed: 0 } }, 'a count no counter reaches (the totals then never move again)')
  refused({ l1: { entries: 1, hits: 2, misses: 3 } }, 'l1 without bytes')
  refused({ req: 1.5 }, 'a fractional request number')
  refused({ metrics: 5 }, 'metrics that are not a list')
  refused({ metrics: [{ name: 'x', help: 'h', type: 'counter', values: 5, aggregator: 'sum' }] }, 'values that are not a list (the page failed at every scrape)')
  refused({ metrics: [{ name: 'x y', help: 'h', type: 'counter', values: [] }] }, 'a name that is no metric name')
  refused({ metrics: [{ name: 'x', help: 'h', type: 'enum', values: [] }] }, 'an unknown type')
  refused({ metrics: [{ name: 'x', help: 'h', type: 'counter', aggregator: 'eval', values: [] }] }, 'an unknown aggregator')
  refused({ metrics: [{ name: 'x', help: 'h', type: 'counter', values: [{ value: NaN, labels: {} }] }] }, 'a NaN counter')
  refused({ metrics: [{ name: 'x', help: 'h', type: 'counter', values: [{ value: 1, labels: { le: { a: 1 } } }] }] }, 'a label value that is an object')
  // An own property named __proto__, as V8's deserialisation makes one from a worker's JSON.
  refused({ metrics: overIpc([{ name: 'x', help: 'h', type: 'counter', values: [{ value: 1, labels: JSON.parse('{"__proto__": {"polluted": 1}}') as unknown }] }]) }, 'a __proto__ label')
  refused({ metrics: Array.from({ length: MAX_METRIC_FAMILIES + 1 }, (_, i) => ({ name: `m${i}`, help: '', type: 'gauge', values: [] })) }, 'too many families')
  refused({ metrics: [{ name: 'x', help: 'h', type: 'gauge', values: Array.from({ length: MAX_METRIC_SAMPLES + 1 }, (_, i) => ({ value: 1, labels: { i } })) }] }, 'a million series would make the page huge')
  // Within the other bounds, 8 labels of 250 characters on 4000 samples: a page of 8 MB.
  const long = 'v'.repeat(250)
  refused({ metrics: [{ name: 'x', help: 'h', type: 'gauge', values: Array.from({ length: 4000 }, (_, i) => ({ value: 1, labels: { a: `${long}${i}`, b: long, c: long, d: long, e: long, f: long, g: long, h: long } })) }] }, 'more label characters in all than MAX_METRIC_LABEL_CHARS')
  assert.ok(8 * 250 * 4000 > MAX_METRIC_LABEL_CHARS)
  assert.equal(({} as Record<string, unknown>).polluted, undefined)
  const gaugeNaN = check({ ...base, metrics: [{ name: 'g', help: 'h', type: 'gauge', values: [{ value: NaN, labels: {} }] }] })
  assert.equal(gaugeNaN.ok, true, 'a gauge may read NaN (Prometheus takes it; nothing sums it into the retired counts)')
})

test('L2 holds at most MAX_PENDING_GETS Gets of one worker; past that a Get is answered "no session" at once and counted', async () => {
  const cache = new PrimarySessionCache({ maxEntries: 100, maxBytes: 1 << 20, lifetimeSeconds: 300 })
  const replies = new Map<number, L2Notice[]>()
  let tooMany = 0
  const l2 = new L2Responder(cache, {
    reply: (worker, notice) => replies.set(worker, [...replies.get(worker) ?? [], notice]),
    broadcast: () => {},
    tooManyGets: () => { tooMany++ }
  }, 50)
  const get = (worker: number, req: number): void => l2.handle(worker, { t: 'session-get', req, id: Buffer.from([req & 0xff, req >> 8]) })
  for (let req = 1; req <= MAX_PENDING_GETS; req++) get(1, req)
  assert.equal(replies.get(1), undefined, 'all held, waiting for the session to arrive')
  get(1, 5000)
  assert.deepEqual(replies.get(1), [{ t: 'session-reply', req: 5000, der: null, createdAt: 0 }])
  assert.equal(tooMany, 1)
  get(2, 1)
  assert.equal(replies.get(2), undefined, 'another worker has its own bound')
  // A held Get still gets the session that arrives meanwhile.
  cache.addLocal(Buffer.from([1, 0]), { der: Buffer.from('s'), createdAt: NOW })
  assert.equal(replies.get(1)?.at(-1)?.t, 'session-reply')
  await new Promise((resolve) => setTimeout(resolve, 80))
  assert.equal(replies.get(1)?.length, MAX_PENDING_GETS + 1, 'every held Get answered once its wait ended')
  get(1, 6000)
  assert.equal(replies.get(1)?.length, MAX_PENDING_GETS + 1, 'held again once answered: the bound is on Gets waiting, not on Gets')
  assert.equal(tooMany, 1)
})

test('L2 applies at most DELS_PER_SECOND Dels of one worker a second (a burst of as many); past that they are dropped and counted', () => {
  const cache = new PrimarySessionCache({ maxEntries: 100, maxBytes: 1 << 20, lifetimeSeconds: 300 })
  const broadcasts: L2Notice[] = []
  let published = 0
  cache.on('local-del', () => { published++ })
  let tooMany = 0
  const l2 = new L2Responder(cache, { reply: () => {}, broadcast: (notice) => broadcasts.push(notice), tooManyDels: () => { tooMany++ } })
  let clock = 1000
  l2.now = () => clock
  const del = (worker: number): void => l2.handle(worker, { t: 'session-del', id: Buffer.from([1]) })
  for (let i = 0; i < DELS_PER_SECOND + 500; i++) del(1)
  assert.equal(published, DELS_PER_SECOND, 'the burst applied, sent to the peers and the other workers; the rest not')
  assert.equal(broadcasts.length, DELS_PER_SECOND)
  assert.equal(tooMany, 500)
  del(2)
  assert.equal(published, DELS_PER_SECOND + 1, 'another worker has its own allowance')
  clock += 100
  for (let i = 0; i < 200; i++) del(1)
  assert.equal(published, DELS_PER_SECOND + 1 + DELS_PER_SECOND / 10, 'a tenth of a second later, a tenth of the rate')
  // A batch's Dels count one by one.
  clock += 10_000
  l2.handle(1, { t: 'session-batch', updates: Array.from({ length: DELS_PER_SECOND + 1 }, () => ({ t: 'session-del' as const, id: Buffer.from([2]) })) })
  assert.equal(tooMany, 500 + 100 + 1)
})
