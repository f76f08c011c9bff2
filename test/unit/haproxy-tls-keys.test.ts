import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import type { HaproxyRuntimeApi } from '../../src/haproxy/runtime-api.js'
import { haproxyBusyRatio, parseShowInfo } from '../../src/haproxy/show-info.js'
import { replaceKeyFile } from '../../src/haproxy/key-file.js'
import { TicketKeyPusher } from '../../src/haproxy/ticket-key-pusher.js'
import { addCounters, MonotonicTotal, type HaproxyFigures } from '../../src/haproxy/terminator-metrics.js'
import { parseShowStat } from '../../src/haproxy/stats.js'
import { expectedRing, haproxyKeyLine, keyFileText, keyLineBytes, nodeKeysFromLine, parseTlsKeyRefs, parseTlsKeys, pushesNeeded } from '../../src/haproxy/tls-keys.js'
import { farmTicketSecrets } from '../../src/tls/farm-ticket-secret.js'
import { TicketKeySchedule } from '../../src/tls/ticket-keys.js'

const schedule = (at: number): TicketKeySchedule => new TicketKeySchedule({ secret: Buffer.alloc(32, 7), rotationSeconds: 60, lifetimeSeconds: 300, now: () => at })

test('an HAProxy key line is the Node ticket key with the HMAC and AES halves swapped', () => {
  const name = crypto.randomBytes(16)
  const hmac = crypto.randomBytes(16)
  const aes = crypto.randomBytes(16)
  const line = haproxyKeyLine(Buffer.concat([name, hmac, aes]))
  assert.deepEqual(Buffer.from(line, 'base64'), Buffer.concat([name, aes, hmac]))
  assert.deepEqual(nodeKeysFromLine(line), Buffer.concat([name, hmac, aes]))
  assert.equal(keyLineBytes(line), 48)
  assert.throws(() => haproxyKeyLine(Buffer.alloc(80)), /48 bytes/)
  assert.throws(() => nodeKeysFromLine(Buffer.alloc(80).toString('base64')), /48-byte/)
})

test('the expected ring is previous, current (encrypting), next, and moves one key per rotation', () => {
  const t = 1_800_000_000_000
  const s = schedule(t)
  const ring = expectedRing(s, t)
  assert.equal(ring.epoch, s.epochAt(t))
  assert.deepEqual(ring.lines, [ring.epoch - 1, ring.epoch, ring.epoch + 1].map((e) => haproxyKeyLine(s.generation(e).keys)))
  // The name of the middle key (the one HAProxy encrypts with) carries the current epoch.
  assert.equal(Buffer.from(ring.lines[1] as string, 'base64').readBigUInt64BE(8), BigInt(ring.epoch))
  const next = expectedRing(s, t + 60_000)
  assert.equal(next.epoch, ring.epoch + 1)
  assert.deepEqual(next.lines.slice(0, 2), ring.lines.slice(1))
  assert.equal(keyFileText(ring), ring.lines.join('\n') + '\n')
})

test('pushes needed: none when current, one after a rotation, three for an unrelated ring', () => {
  const s = schedule(1_800_000_000_000)
  const now = expectedRing(s, 1_800_000_000_000).lines
  const before = expectedRing(s, 1_800_000_000_000 - 60_000).lines
  const twoBefore = expectedRing(s, 1_800_000_000_000 - 120_000).lines
  assert.equal(pushesNeeded(now, now), 0)
  assert.equal(pushesNeeded(before, now), 1)
  assert.equal(pushesNeeded(twoBefore, now), 2)
  assert.equal(pushesNeeded(['a', 'b', 'c'], now), 3)
  assert.equal(pushesNeeded([], now), 3)
  // A ring *ahead* of ours (a peer clock far ahead wrote it) is no prefix either: replaced.
  assert.equal(pushesNeeded(expectedRing(s, 1_800_000_000_000 + 60_000).lines, now), 3)
})

test('the farm ticket secret is the one tlsfleet nodes use: same secret, same ring', () => {
  const farmKey = { id: 1, secret: Buffer.alloc(48, 3) }
  const [a] = farmTicketSecrets([farmKey])
  const [b] = farmTicketSecrets([{ id: 1, secret: Buffer.alloc(48, 3) }])
  const [other] = farmTicketSecrets([{ id: 1, secret: Buffer.alloc(48, 4) }])
  assert.deepEqual(a, b)
  assert.notDeepEqual(a, other)
})

test('show tls-keys answers as HAProxy 2.6.12 prints them', () => {
  assert.deepEqual(parseTlsKeyRefs('# id (file)\n0 (/etc/haproxy/tickets.key)\n1 (/tmp/other keys)\n'), [{ id: 0, file: '/etc/haproxy/tickets.key' }, { id: 1, file: '/tmp/other keys' }])
  assert.deepEqual(parseTlsKeyRefs('# id (file)\n'), [])
  const keys = ['8XKUHI4z2ObXajlj1UgCEIoPyGEm16wq7WS9WltK7BAAgr0pRA/uK5rhBcI1n7vM', 'IL7sUEhuj0DJGRkCS+gWUKaPOIkPtgBZMAT3/EIXUR4h3/h+drfVF9Pxv/lYWnOu', 'lWbM9Z+8SUl2u9t7r9MGVD1hNpuYeiXptueltYzWxvP7pN2phlZQNAvWr21qc3Tq']
  assert.deepEqual(parseTlsKeys(`# id secret\n# 0 (/tmp/k)\n0.0 ${keys[0]}\n0.1 ${keys[1]}\n0.2 ${keys[2]}\n`), keys)
  assert.throws(() => parseTlsKeys("'show tls-keys' unable to locate referenced filename\n"), (err: Error) => /no key lines/.test(err.message) && !err.message.includes('locate'))
})

test('show info: the fields the agent uses, and the busy ratio', () => {
  const info = parseShowInfo('Name: HAProxy\nVersion: 2.6.12-1+deb12u3\nPid: 12631\nStart_time_sec: 1796165323\nMaxconn: 1000\nCurrConns: 250\nCurrSslConns: 240\nSslRate: 40\nSslFrontendKeyRate: 10\nSslFrontendSessionReuse_pct: 75\nSslCacheLookups: 12\nSslCacheMisses: 2\nIdle_pct: 90\nStopping: 0\n')
  assert.equal(info.pid, 12631)
  assert.equal(info.startTime, 1796165323)
  assert.equal(info.stopping, false)
  assert.equal(info.sslRate, 40)
  assert.equal(info.sslFrontendKeyRate, 10)
  assert.equal(info.sslCacheMisses, 2)
  // 250 of 1000 slots beat 10% CPU.
  assert.equal(haproxyBusyRatio(info), 0.25)
  assert.equal(haproxyBusyRatio(parseShowInfo('Name: HAProxy\nIdle_pct: 30\nCurrConns: 1\nMaxconn: 1000\n')), 0.7)
  assert.equal(parseShowInfo('Name: HAProxy\nStopping: 1\n').stopping, true)
  assert.throws(() => parseShowInfo('Permission denied\n'), /no "Name:" line/)
})

test('a counter read from HAProxy never goes backwards across an HAProxy restart', () => {
  const total = new MonotonicTotal()
  total.update(100) // HAProxy ran before us: its count is taken whole
  total.update(130)
  total.update(5) // restarted: 5 new since
  total.update(undefined)
  total.update(9)
  assert.equal(total.total, 139)
})

// `show info` of HAProxy 2.6.12 (Debian 12), the lines the companion reads, as captured.
function showInfo (pid: number, start: number, lookups: number, misses: number): string {
  return `Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nRelease_date: 2026/10/17\nNbthread: 2\nPid: ${pid}\nUptime_sec: 3\nMaxconn: 9986\nCurrConns: 0\nCurrSslConns: 0\nSslRate: 0\nSslFrontendKeyRate: 0\nSslFrontendSessionReuse_pct: 0\nSslCacheLookups: ${lookups}\nSslCacheMisses: ${misses}\nIdle_pct: 100\nStopping: 0\nStart_time_sec: ${start}\n`
}

// `show stat` of HAProxy 2.6.12: its header and a TLS frontend's row, ssl_sess / ssl_reused_sess filled in.
const STAT_HEADER = '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,'
const FRONTEND_ROW = 'tls_in,FRONTEND,,,0,0,9981,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,,,,,,,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,tcp,,0,0,0,,0,0,0,,,,,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,'
function showStat (full: number, resumed: number): string {
  const header = STAT_HEADER.slice(2).split(',')
  const cells = FRONTEND_ROW.split(',')
  cells[header.indexOf('ssl_sess')] = String(full)
  cells[header.indexOf('ssl_reused_sess')] = String(resumed)
  return `${STAT_HEADER}\n${cells.join(',')}\n`
}

test('a new HAProxy process is told by show info\'s pid and start time: its counts are all new, even past the old process\'s', () => {
  const f: HaproxyFigures = { serving: true, handshakesFull: new MonotonicTotal(), handshakesResumed: new MonotonicTotal(), cacheLookups: new MonotonicTotal(), cacheMisses: new MonotonicTotal() }
  const read = (info: string, stat: string): void => addCounters(f, parseShowInfo(info), parseShowStat(stat).filter((r) => r.svname === 'FRONTEND'))
  read(showInfo(16912, 1796445840, 50, 10), showStat(100, 40))
  read(showInfo(16912, 1796445840, 55, 11), showStat(110, 44))
  assert.deepEqual([f.handshakesFull.total, f.handshakesResumed.total, f.cacheLookups.total, f.cacheMisses.total], [110, 44, 55, 11])
  // Restarted, and busy: before the next read the new process passed every old count.
  read(showInfo(17002, 1796445900, 70, 15), showStat(130, 60))
  assert.deepEqual([f.handshakesFull.total, f.handshakesResumed.total, f.cacheLookups.total, f.cacheMisses.total], [240, 104, 125, 26])
  read(showInfo(17002, 1796445900, 71, 15), showStat(135, 61))
  assert.deepEqual([f.handshakesFull.total, f.handshakesResumed.total, f.cacheLookups.total, f.cacheMisses.total], [245, 105, 126, 26])
  // The same pid with another start time (the pid reused by a later process) is a new process too.
  read(showInfo(17002, 1796446000, 80, 16), showStat(140, 70))
  assert.equal(f.handshakesFull.total, 385)
})

/** A Runtime API that holds one ring, starting with the farm's at `at`, as HAProxy's `set ssl tls-key` rolls it. */
function fakeRing (s: ReturnType<typeof schedule>, at: number): { api: HaproxyRuntimeApi; ring: string[] } {
  const state = { ring: [...expectedRing(s, at).lines] }
  const api = {
    showTlsKeys: async () => [...state.ring],
    setTlsKey: async (_file: string, line: string) => { state.ring = [...state.ring.slice(1), line] }
  } as unknown as HaproxyRuntimeApi
  return { api, get ring () { return state.ring }, set ring (lines: string[]) { state.ring = lines } }
}

/** A key file path in a fresh temp dir (the pusher writes the ring there), removed at exit. */
function keyFilePath (): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-pusher-'))
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return path.join(dir, 'tls-ticket-keys')
}

test('the key file holds the ring the pusher left: written after a rotation and a repair, read again only when the ring moves', async () => {
  let at = 1_800_000_000_000
  const s = schedule(at)
  const haproxy = fakeRing(s, at)
  const api = haproxy.api
  const file = keyFilePath()
  fs.writeFileSync(file, 'stale\n', { mode: 0o644 })
  const pusher = new TicketKeyPusher(api, file, s, () => at)
  assert.equal((await pusher.check()).fileWritten, true, 'a current ring over a stale file: the file is rewritten')
  assert.equal(fs.readFileSync(file, 'utf8'), haproxy.ring.join('\n') + '\n')
  assert.equal(fs.statSync(file).mode & 0o777, 0o640, 'readable by its group still, by others no more')
  assert.equal((await pusher.check()).fileWritten, undefined, 'unchanged: not written again')
  at += 60_000
  const rotated = await pusher.check()
  assert.equal(rotated.reason, 'rotation')
  assert.equal(rotated.fileWritten, true)
  assert.deepEqual(fs.readFileSync(file, 'utf8').trim().split('\n'), expectedRing(s, at).lines)
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['tls-ticket-keys'], 'no temporary file left behind')
  // A directory it cannot write into: said, never thrown, never with a key.
  const nowhere = new TicketKeyPusher(api, path.join(path.dirname(file), 'no-such-dir', 'keys'), s, () => at)
  const check = await nowhere.check()
  assert.equal(check.current, true)
  assert.match(check.fileProblem ?? '', /^cannot rewrite \S+no-such-dir\/keys with the ring: ENOENT/)
  for (const line of haproxy.ring) assert.equal(check.fileProblem?.includes(line), false)
})

test('a push is a rotation only on the ring the pusher left; a ring one rotation old after a restart is a repair', async () => {
  let at = 1_800_000_000_000
  const s = schedule(at)
  const haproxy = fakeRing(s, at)
  const pusher = new TicketKeyPusher(haproxy.api, keyFilePath(), s, () => at)
  assert.deepEqual(await pusher.check(), { current: true, epoch: s.epochAt(at), pushed: 0, fileWritten: true })
  const leftBehind = [...haproxy.ring]
  at += 60_000 // the epoch moves on: one key, on the ring we left
  assert.equal((await pusher.check()).reason, 'rotation')
  at += 60_000
  haproxy.ring = leftBehind // HAProxy restarted from a key file two rotations old: two keys missing
  const repaired = await pusher.check()
  assert.equal(repaired.reason, 'repair')
  assert.equal(repaired.current, true)
  // Restarted from a file exactly one rotation old: one key is missing, still a repair.
  const before = [...haproxy.ring]
  at += 60_000
  assert.equal((await pusher.check()).reason, 'rotation', 'the ring just repaired is the one left')
  haproxy.ring = before
  const oneOld = await pusher.check()
  assert.equal(oneOld.pushed, 1)
  assert.equal(oneOld.reason, 'repair')
})

test('HAProxy restarted from the very ring the pusher left, after a rotation during its downtime: a repair', async () => {
  // What CI met: key file written and left in the same epoch, HAProxy stopped, the epoch moved
  // on while it was down, then it came back from that file. The ring equals the one left.
  let at = 1_800_000_000_000
  const s = schedule(at)
  const haproxy = fakeRing(s, at)
  const keyFile = [...haproxy.ring]
  const pusher = new TicketKeyPusher(haproxy.api, keyFilePath(), s, () => at)
  assert.equal((await pusher.check()).pushed, 0)
  pusher.forget() // the terminator saw HAProxy unreachable
  at += 60_000
  haproxy.ring = [...keyFile]
  const back = await pusher.check()
  assert.equal(back.pushed, 1)
  assert.equal(back.reason, 'repair')
})

test('a new HAProxy process whose first check falls after a rotation: a rotation when it started before the boundary (its file was current), a repair when after it', async () => {
  const boundary = 1_800_000_000_000 - (1_800_000_000_000 % 60_000) + 60_000
  for (const [startSec, reason] of [[boundary / 1000 - 1, 'rotation'], [boundary / 1000, 'repair'], [undefined, 'repair']] as const) {
    let at = boundary - 1500
    const s = schedule(at)
    const haproxy = fakeRing(s, at)
    const pusher = new TicketKeyPusher(haproxy.api, keyFilePath(), s, () => at)
    assert.equal((await pusher.check(boundary / 1000 - 100)).pushed, 0)
    // Reloaded (new process, from the key file: the ring left), then the poll after the boundary.
    pusher.forget()
    at = boundary + 300
    const check = await pusher.check(startSec)
    assert.deepEqual([check.pushed, check.reason, check.current], [1, reason, true], `started at ${String(startSec)}`)
  }
})

test('a rewritten key file keeps its group-read bit (an HAProxy running as its own user may read it through its group), never others\' bits', () => {
  const file = keyFilePath()
  const root = process.geteuid?.() === 0
  // As root the file keeps its owner and group too: give it a group that is not root's.
  const group = root ? 65534 : (process.getegid?.() ?? 0)
  fs.writeFileSync(file, 'old\n', { mode: 0o640 })
  fs.chmodSync(file, 0o640)
  if (root) fs.chownSync(file, 0, group)
  replaceKeyFile(file, 'new\n')
  const after = fs.statSync(file)
  assert.equal(fs.readFileSync(file, 'utf8'), 'new\n')
  assert.equal(after.mode & 0o777, 0o640, 'group-readable as before: HAProxy\'s next start can read it')
  assert.equal(after.gid, group)
  fs.chmodSync(file, 0o606)
  replaceKeyFile(file, 'newer\n')
  assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'others never read the keys')
  fs.rmSync(file)
  replaceKeyFile(file, 'first\n')
  assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'a new file is 0600')
})
