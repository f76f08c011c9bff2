import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import pino from 'pino'
import { connectionCap, FD_RESERVE, fdConnectionCap, workerShare } from '../../src/admission/connection-cap.js'
import { parseFdLimit } from '../../src/admission/fd-limit.js'
import { SourceLimiter, sourceKey } from '../../src/admission/source-limiter.js'
import { WorkerAdmission } from '../../src/admission/worker-admission.js'
import { formatAgentReply } from '../../src/agent/agent-reply.js'
import { makeSample } from '../../src/agent/load-sampler.js'
import { haproxyMaxconn, NodeState } from '../../src/agent/node-state.js'
import { parseCidr } from '../../src/config/cidr.js'
import { loadConfig } from '../../src/config/load.js'
import { checkOptionCombinations } from '../../src/config/node-checks.js'
import { ConfigConflictError, ConfigError } from '../../src/errors.js'
import { WorkerMetrics } from '../../src/metrics/worker-metrics.js'
import { isTrustedPeer, proxyTrustList, proxyTrustWarning } from '../../src/proxy/proxy-trust.js'
import { BurstLog, BurstLogs } from '../../src/util/burst-log.js'

const healthy = { terminator: { serving: true }, warm: true, stopping: false }

test('--max-connections is split evenly over the workers, never above the node value (at least one each)', () => {
  assert.equal(workerShare(0, 4), 0)
  assert.equal(workerShare(1000, 4), 250)
  assert.equal(workerShare(1001, 4), 250)
  assert.equal(workerShare(3, 4), 1)
  assert.equal(workerShare(10, 1), 10)
})

test('the descriptor bound: two per connection, after those open at start and a reserve', () => {
  assert.equal(fdConnectionCap(1024, 30), Math.floor((1024 - 30 - FD_RESERVE) / 2))
  assert.equal(fdConnectionCap(40, 30), 0)
  assert.equal(fdConnectionCap(undefined, 30), Number.POSITIVE_INFINITY)
  assert.equal(fdConnectionCap(Number.POSITIVE_INFINITY, 30), Number.POSITIVE_INFINITY)
  // The lower bound decides, and names itself as the reason a refusal is counted under.
  assert.deepEqual(connectionCap(100, 489), { limit: 100, bound: 'max_connections' })
  assert.deepEqual(connectionCap(600, 489), { limit: 489, bound: 'fd_limit' })
  assert.deepEqual(connectionCap(0, 489), { limit: 489, bound: 'fd_limit' })
})

test('the soft limit is read from /proc/self/limits text', () => {
  const text = 'Limit                     Soft Limit           Hard Limit           Units     \n' +
    'Max processes             63448                63448                processes \n' +
    'Max open files            1024                 524288               files     \n'
  assert.equal(parseFdLimit(text), 1024)
  assert.equal(parseFdLimit(text.replace('1024 ', 'unlimited')), Number.POSITIVE_INFINITY)
  assert.equal(parseFdLimit('Max processes 10 10 processes\n'), undefined)
})

test('per-source slots: admitted up to the cap, given back, and the map forgets idle sources', () => {
  const limiter = new SourceLimiter(2)
  assert.equal(limiter.admit('203.0.113.5'), true)
  assert.equal(limiter.admit('203.0.113.5'), true)
  assert.equal(limiter.admit('203.0.113.5'), false)
  assert.equal(limiter.admit('203.0.113.6'), true)
  limiter.release('203.0.113.5')
  assert.equal(limiter.admit('203.0.113.5'), true)
  for (const source of ['203.0.113.5', '203.0.113.5', '203.0.113.6', '198.51.100.1']) limiter.release(source)
  assert.equal(limiter.sources, 0)
})

test('per-source slots: an IPv4 client is one source whether seen IPv4-mapped (a [::] listener) or plain (a PROXY header)', () => {
  assert.equal(sourceKey('::ffff:203.0.113.5'), '203.0.113.5')
  assert.equal(sourceKey('203.0.113.5'), '203.0.113.5')
  assert.equal(sourceKey('2001:db8::5'), '2001:db8::5')
  assert.equal(sourceKey('::ffff:1'), '::ffff:1') // not a mapped address
  const limiter = new SourceLimiter(2)
  assert.equal(limiter.admit('::ffff:203.0.113.5'), true)
  assert.equal(limiter.admit('203.0.113.5'), true)
  assert.equal(limiter.admit('::ffff:203.0.113.5'), false)
  assert.equal(limiter.admit('203.0.113.5'), false)
  assert.equal(limiter.sources, 1)
  limiter.release('203.0.113.5')
  limiter.release('::ffff:203.0.113.5')
  assert.equal(limiter.sources, 0)
})

test('a burst is logged once at its start and once when it has been quiet', async () => {
  const events: string[] = []
  const burst = new BurstLog<string>({ quietMs: 60, onStart: (what) => events.push(`start ${what}`), onEnd: (n) => events.push(`end ${n}`) })
  for (let i = 0; i < 1000; i++) burst.note(`#${i}`)
  assert.deepEqual(events, ['start #0'])
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.deepEqual(events, ['start #0', 'end 1000'])
  burst.note('again')
  burst.flush()
  assert.deepEqual(events, ['start #0', 'end 1000', 'start again', 'end 1'])
})

test('bursts of different kinds are logged apart: one kind\'s burst does not hide the start of another\'s', () => {
  const events: string[] = []
  const bursts = new BurstLogs<string>({ quietMs: 60_000, onStart: (kind, what) => events.push(`start ${kind} ${what}`), onEnd: (kind, n) => events.push(`end ${kind} ${n}`) })
  for (let i = 0; i < 5; i++) bursts.note('refused', `#${i}`)
  bursts.note('timeout', 'x')
  bursts.note('refused', 'late')
  assert.deepEqual(events, ['start refused #0', 'start timeout x'])
  bursts.flush()
  assert.deepEqual(events, ['start refused #0', 'start timeout x', 'end refused 6', 'end timeout 1'])
})

test('--proxy-from: addresses and CIDR ranges, comma-separated or repeated; "any" alone; bad values name the key', () => {
  assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' })
  assert.deepEqual(parseCidr('2001:db8::1'), { address: '2001:db8::1', prefix: 128, family: 'ipv6' })
  assert.match(String(parseCidr('10.0.0.0/33')), /prefix length from 0 to 32/)
  assert.match(String(parseCidr('haproxy.example')), /not an IPv4 or IPv6 address/)
  const config = loadConfig({ flags: { 'proxy-protocol-in': 'v2', 'proxy-from': ['127.0.0.1,10.0.1.0/24', '::1'] }, env: {} })
  assert.deepEqual(config.proxyFrom.map((c) => c === 'any' ? c : `${c.address}/${c.prefix}`), ['127.0.0.1/32', '10.0.1.0/24', '::1/128'])
  assert.deepEqual(loadConfig({ env: { TLSFLEET_PROXY_FROM: 'any', TLSFLEET_PROXY_PROTOCOL_IN: 'v1' } }).proxyFrom, ['any'])
  assert.throws(() => loadConfig({ flags: { 'proxy-from': ['any,10.0.0.1'] }, env: {} }), (err: unknown) => err instanceof ConfigError && /proxy-from.*any cannot be combined/.test(err.message))
  assert.throws(() => loadConfig({ flags: { 'proxy-from': ['10.0.0.300'] }, env: {} }), (err: unknown) => err instanceof ConfigError && /--proxy-from.*"10\.0\.0\.300" is not an IPv4 or IPv6 address/.test(err.message))
})

test('admission options that do not work together are refused before anything starts', () => {
  const conflict = (flags: Record<string, unknown>, pattern: RegExp): void => {
    assert.throws(() => checkOptionCombinations(loadConfig({ flags, env: {} })), (err: unknown) => err instanceof ConfigConflictError && pattern.test(err.message))
  }
  conflict({ 'proxy-from': ['10.0.0.1'] }, /--proxy-from has no effect with --proxy-protocol-in off/)
  conflict({ 'max-connections': '3', workers: '4' }, /--max-connections 3 is split over 4 workers/)
  conflict({ 'max-connections': '100', maxconn: '200', workers: '1' }, /--maxconn 200 .* above --max-connections 100/)
  checkOptionCombinations(loadConfig({ flags: { 'max-connections': '100', maxconn: '90', workers: '2', 'proxy-protocol-in': 'v2', 'proxy-from': ['10.0.0.1'] }, env: {} }))
})

test('a PROXY header is believed only from --proxy-from peers (IPv4-mapped peers as IPv4)', () => {
  const list = proxyTrustList([{ address: '127.0.0.1', prefix: 32, family: 'ipv4' }, { address: '10.1.0.0', prefix: 16, family: 'ipv4' }, { address: '::1', prefix: 128, family: 'ipv6' }])
  assert.ok(list !== undefined)
  const peer = (remoteAddress: string | undefined, remoteFamily: string): net.Socket => ({ remoteAddress, remoteFamily }) as unknown as net.Socket
  assert.equal(isTrustedPeer(list, peer('127.0.0.1', 'IPv4')), true)
  assert.equal(isTrustedPeer(list, peer('127.0.0.2', 'IPv4')), false)
  assert.equal(isTrustedPeer(list, peer('10.1.200.3', 'IPv4')), true)
  assert.equal(isTrustedPeer(list, peer('::ffff:127.0.0.1', 'IPv6')), true)
  assert.equal(isTrustedPeer(list, peer('::2', 'IPv6')), false)
  assert.equal(isTrustedPeer(list, peer(undefined, 'IPv4')), false)
  assert.equal(proxyTrustList([]), undefined)
  assert.equal(proxyTrustList(['any']), undefined)
})

test('start-up warnings: PROXY in without --proxy-from, and auto always', () => {
  assert.equal(proxyTrustWarning('off', []), undefined)
  assert.match(proxyTrustWarning('v2', []) ?? '', /believes a PROXY header from any peer.*--proxy-from/)
  assert.equal(proxyTrustWarning('v2', ['any']), undefined)
  assert.equal(proxyTrustWarning('v1', [{ address: '10.0.0.2', prefix: 32, family: 'ipv4' }]), undefined)
  assert.match(proxyTrustWarning('auto', ['any']) ?? '', /auto believes a PROXY header from any peer: a client that connects directly can forge/)
  assert.match(proxyTrustWarning('auto', [{ address: '10.0.0.2', prefix: 32, family: 'ipv4' }]) ?? '', /auto: .*only from --proxy-from 10\.0\.0\.2\/32/)
})

test('with --max-connections the agent sends maxconn a reserve below the node limit, following what the workers admit', () => {
  assert.equal(haproxyMaxconn(1000), 950)
  assert.equal(haproxyMaxconn(20), 19)
  assert.equal(haproxyMaxconn(1), 1)
  const state = new NodeState({ connectionLimit: 1000 })
  state.updateHealth(healthy)
  assert.equal(formatAgentReply(state.agentReply()), 'ready up 100% maxconn:950\n')
  // A lowered descriptor limit: the workers admit fewer, and HAProxy is told.
  state.updateLoad({ eventLoopUtilization: 0, handshakesPerSecond: 0, connectionFill: 0, connectionLimit: 400 })
  assert.equal(state.snapshot().maxconn, 380)
  // --maxconn given explicitly wins; without --max-connections no maxconn is sent.
  assert.equal(new NodeState({ maxconn: 300, connectionLimit: 1000 }).agentReply().maxconn, 300)
  const plain = new NodeState()
  plain.updateLoad({ eventLoopUtilization: 0, handshakesPerSecond: 0, connectionFill: 0, connectionLimit: 400 })
  assert.equal(plain.agentReply().maxconn, undefined)
})

test('a node filling up with connections lowers its weight even with an idle event loop', () => {
  const state = new NodeState()
  state.updateHealth(healthy)
  const weights: number[] = []
  for (let i = 0; i < 8; i++) {
    state.updateLoad({ eventLoopUtilization: 0.02, handshakesPerSecond: 0, connectionFill: 0.95 })
    weights.push(state.snapshot().weightPercent)
  }
  assert.ok(weights.every((w, i) => i === 0 || w <= (weights[i - 1] as number)), `non-increasing: ${weights.join(',')}`)
  assert.ok((weights.at(-1) as number) <= 20, `weight ${weights.join(',')}`)
})

test('the load sample sums what the workers admit, and has no limit when one worker has none', () => {
  const worker = (pid: number, open: number, limit: number): Parameters<typeof makeSample>[0][number] => ({ pid, l1: { entries: 0, hits: 0, misses: 0, bytes: 0 }, eventLoopUtilization: 0.1, activeConnections: open, connectionLimit: limit, handshakes: { full: 0, resumed: 0 } })
  const sample = makeSample([worker(1, 30, 100), worker(2, 10, 100)], 2, undefined)
  assert.equal(sample.connections, 40)
  assert.equal(sample.connectionLimit, 200)
  assert.equal(makeSample([worker(1, 30, 100), worker(2, 10, 0)], 2, undefined).connectionLimit, undefined)
})

test('descriptor watch: an exhaustion is counted and logged once, its end logged, a changed limit sets the cap again', async () => {
  const lines: Array<{ level: number; msg: string }> = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as { level: number; msg: string }) } })
  const metrics = new WorkerMetrics()
  let limit = 1000
  let probe: 'ok' | 'EMFILE' = 'ok'
  const admission = new WorkerAdmission({ share: 0, maxConnections: 0, listeners: 1, metrics, log, fdLimit: () => limit, openFds: () => 40, probe: () => probe })
  const server = net.createServer()
  admission.attach([server])
  try {
    assert.equal(admission.limit, Math.floor((1000 - 40 - FD_RESERVE) / 2))
    assert.equal(server.maxConnections, admission.limit)
    probe = 'EMFILE'
    admission.checkDescriptors(1000)
    admission.checkDescriptors(2000)
    admission.checkDescriptors(3000)
    probe = 'ok'
    admission.checkDescriptors(4000)
    const exhausted = lines.filter((l) => /file descriptors exhausted/.test(l.msg))
    assert.equal(exhausted.length, 1)
    assert.equal(lines.filter((l) => /file descriptors available again/.test(l.msg)).length, 1)
    assert.match(await metrics.registry.getSingleMetricAsString('tlsfleet_fd_exhaustions_total'), /^tlsfleet_fd_exhaustions_total 1$/m)
    limit = 200
    admission.checkDescriptors(5000)
    assert.equal(admission.limit, Math.floor((200 - 40 - FD_RESERVE) / 2))
    assert.equal(server.maxConnections, admission.limit)
    assert.ok(lines.some((l) => /file-descriptor limit changed/.test(l.msg)))
  } finally {
    admission.stop()
  }
})
