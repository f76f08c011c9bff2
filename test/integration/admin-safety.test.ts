import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { after, before, test } from 'node:test'
import type { StateBody } from '../../src/admin/schemas.js'
import { runCli } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { eventually, REPO_ROOT, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

// A node started the way `npm start` starts one: no --admin-token-file. Reads stay open on
// loopback, state changes need the token it generated, and browser-borne requests are refused.
const dir = tempDir()
const stateDir = path.join(dir, 'state')
let node: RunningNode
let adminPort: number

before(async () => {
  let tls: number
  ;[tls, adminPort] = await freePorts(2) as [number, number]
  node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${tls}`, '--cert', makeCertificate(dir, 'n', ['localhost']),
    '--state-dir', stateDir, '--admin-allow-host', 'tlsfleet.internal'], { adminPort })
})

after(async () => { await node?.stop() })

/** A raw request, so the test controls Host, Origin and every other header. */
async function request (method: string, route: string, headers: Record<string, string>, body?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: adminPort, method, path: route, headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) } }, (res) => {
      let text = ''
      res.on('data', (d: Buffer) => { text += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text === '' ? {} : JSON.parse(text) as Record<string, unknown> }))
    })
    req.once('error', reject)
    req.end(body)
  })
}

const stateNow = async (): Promise<string> => ((await (await fetch(`${node.adminUrl}/v1/state`)).json()) as StateBody).state
const token = (): string => fs.readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim()
const json = { 'content-type': 'application/json' }

test('without a token file the node generates one (mode 0600); reads are open, an unauthenticated state change is refused', async () => {
  assert.equal(node.logs.find((l) => l.msg === 'tlsfleet node ready')?.dashboard, `http://127.0.0.1:${adminPort}/`, 'the ready line names the dashboard')
  const stat = fs.statSync(path.join(stateDir, 'admin.token'))
  assert.equal(stat.mode & 0o777, 0o600)
  assert.ok(token().length >= 32)
  assert.equal(await stateNow(), 'ready')
  const put = await request('PUT', '/v1/state', { ...json, host: `127.0.0.1:${adminPort}` }, '{"state":"drain"}')
  assert.equal(put.status, 401)
  assert.match(put.json.message as string, /a state change requires "Authorization: Bearer <token>"/)
  const move = await request('POST', '/v1/clients/move', { host: `127.0.0.1:${adminPort}` })
  assert.equal(move.status, 401)
  assert.equal(await stateNow(), 'ready')
  const ok = await request('PUT', '/v1/state', { ...json, host: `127.0.0.1:${adminPort}`, authorization: `Bearer ${token()}` }, '{"state":"drain"}')
  assert.equal(ok.status, 200)
  assert.equal(await stateNow(), 'drain')
  const back = await request('PUT', '/v1/state', { ...json, host: `127.0.0.1:${adminPort}`, authorization: `Bearer ${token()}` }, '{"state":"ready"}')
  assert.equal(back.status, 200)
})

test('a Host that does not name the node is refused (DNS rebinding); /health stays open for HAProxy', async () => {
  const read = await request('GET', '/v1/state', { host: 'attacker.example' })
  assert.equal(read.status, 403)
  assert.match(read.json.message as string, /Host "attacker\.example" does not name this node/)
  const write = await request('PUT', '/v1/state', { ...json, host: 'attacker.example:80', authorization: `Bearer ${token()}` }, '{"state":"drain"}')
  assert.equal(write.status, 403)
  assert.equal(await stateNow(), 'ready')
  assert.equal((await request('GET', '/v1/state', { host: 'tlsfleet.internal' })).status, 200, 'an allowed name is refused')
  assert.equal((await request('GET', '/v1/state', { host: 'localhost:1234' })).status, 200)
  assert.equal((await request('GET', '/v1/state', { host: '[::1]:8445' })).status, 200)
  assert.equal((await request('GET', '/health', { host: 'attacker.example' })).status, 200)
})

test('cross-origin state changes are refused even with the token; text/plain bodies are not parsed', async () => {
  const auth = { authorization: `Bearer ${token()}`, host: `127.0.0.1:${adminPort}` }
  const origin = await request('POST', '/v1/clients/move', { ...auth, origin: 'http://evil.example' })
  assert.equal(origin.status, 403)
  assert.match(origin.json.message as string, /cross-site state change: Origin http:\/\/evil\.example is not this API/)
  const fetchSite = await request('PUT', '/v1/state', { ...json, ...auth, 'sec-fetch-site': 'cross-site' }, '{"state":"drain"}')
  assert.equal(fetchSite.status, 403)
  const plain = await request('PUT', '/v1/state', { ...auth, 'content-type': 'text/plain' }, '{"state":"drain"}')
  assert.equal(plain.status, 415)
  assert.equal(await stateNow(), 'ready')
  const sameOrigin = await request('PUT', '/v1/state', { ...json, ...auth, origin: `http://127.0.0.1:${adminPort}` }, '{"state":"ready"}')
  assert.equal(sameOrigin.status, 200)
})

test('connections the admin API is not asked anything on are bounded: at 128 the oldest makes room, a silent one is cut after 10 s', async () => {
  const connect = async (): Promise<{ socket: net.Socket; closed: boolean }> => {
    const socket = net.connect({ host: '127.0.0.1', port: adminPort })
    const conn = { socket, closed: false }
    socket.on('error', () => {})
    socket.on('close', () => { conn.closed = true })
    await new Promise<void>((resolve) => socket.once('connect', resolve))
    return conn
  }
  const before = await node.metric('tlsfleet_admin_connections_evicted_total')
  const silent: Array<{ socket: net.Socket; closed: boolean }> = []
  try {
    for (let i = 0; i < 140; i++) silent.push(await connect())
    // Still answering on a new connection (one more silent one made room), and the oldest are the
    // ones gone. Not through the global agent: a keep-alive socket it kept from an earlier test is
    // the oldest connection of all, and was closed to make room.
    const health = await new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: adminPort, path: '/health', agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0) }).once('error', reject)
    })
    assert.equal(health, 200)
    await eventually(() => silent.slice(0, 12).every((c) => c.closed), 3000, 'the oldest connections closed')
    assert.ok(silent.slice(-100).every((c) => !c.closed), 'newer connections were closed too')
    assert.ok(await node.metric('tlsfleet_admin_connections_evicted_total') - before >= 13)
    // The rest are cut once silent for 10 s.
    await eventually(() => silent.every((c) => c.closed), 15_000, 'the silent connections cut')
  } finally {
    for (const c of silent) c.socket.destroy()
  }
})

test('tlsfleet drain finds the generated token in --state-dir', async () => {
  const drain = await runCli(['drain', '--admin', node.adminUrl, '--state-dir', stateDir])
  assert.equal(drain.code, 0, drain.stderr)
  assert.equal(await stateNow(), 'drain')
  const ready = await runCli(['ready', '--admin', node.adminUrl, '--state-dir', stateDir])
  assert.equal(ready.code, 0, ready.stderr)
  assert.equal(await stateNow(), 'ready')
})

test('--admin-allow-unauthenticated on lets state changes through without a token, with a warning', async () => {
  const [tls, admin] = await freePorts(2) as [number, number]
  const open = await startNode(['--workers', '1', '--listen', `127.0.0.1:${tls}`, '--cert', makeCertificate(dir, 'o', ['localhost']),
    '--state-dir', path.join(dir, 'open'), '--admin-allow-unauthenticated', 'on'], { adminPort: admin })
  try {
    assert.ok(open.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('anyone who reaches the admin API can drain')))
    const res = await fetch(`${open.adminUrl}/v1/state`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"state":"drain"}' })
    assert.equal(res.status, 200)
  } finally {
    await open.stop()
  }
})

test('the Dockerfile\'s HEALTHCHECK command: healthy while the node is up, drained or not (a drained node must not be restarted); unhealthy when nothing answers', async () => {
  const dockerfile = fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8')
  const script = /HEALTHCHECK[^\n]*\\\n\s*CMD \["node", "-e", "((?:[^"\\]|\\.)*)"\]/.exec(dockerfile)?.[1]
  assert.ok(script !== undefined, 'no HEALTHCHECK CMD ["node", "-e", ...] in the Dockerfile')
  const check = async (port: number): Promise<number | null> => {
    const child = spawn(process.execPath, ['-e', script.replace('127.0.0.1:8445', `127.0.0.1:${port}`)], { stdio: 'ignore' })
    return await new Promise((resolve) => child.once('exit', (code) => resolve(code)))
  }
  assert.equal(await check(adminPort), 0)
  const auth = { ...json, host: `127.0.0.1:${adminPort}`, authorization: `Bearer ${token()}` }
  assert.equal((await request('PUT', '/v1/state', auth, '{"state":"drain"}')).status, 200)
  try {
    assert.equal((await fetch(`${node.adminUrl}/health`)).status, 503, 'HAProxy\'s httpchk sees the drain')
    assert.equal(await check(adminPort), 0, 'a drained node is still healthy for Docker')
  } finally {
    assert.equal((await request('PUT', '/v1/state', auth, '{"state":"ready"}')).status, 200)
  }
  const [closed] = await freePorts(1) as [number]
  assert.equal(await check(closed), 1)
})
