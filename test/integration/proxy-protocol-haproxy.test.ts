import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { parseProxyHeader, type ProxyHeader, type ProxyParseResult } from '../../src/proxy/proxy-protocol.js'
import { freePort, freePorts } from '../helpers/ports.js'

/**
 * What HAProxy really sends with `send-proxy` and `send-proxy-v2`, decoded by our parser.
 * A Node server behind HAProxy parses the header, then answers the client (through HAProxy)
 * with a JSON line describing it, so each client can match the header to its own socket.
 */

interface Report { auto: ProxyParseResult; strict: ProxyParseResult; rest: string }

let haproxy: ChildProcess | undefined
let haproxyLog = ''
let dir: string
let backend: net.Server
let backendPort: number
let v1Port: number
let v2Port: number
let v2TlvPort: number
let v6Port: number

function startBackend (): Promise<net.Server> {
  const server = net.createServer((socket) => {
    let buffered = Buffer.alloc(0)
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk])
      const auto = parseProxyHeader(buffered, 'auto')
      if (auto.status === 'incomplete') return
      const rest = auto.status === 'ok' ? buffered.subarray(auto.length) : buffered
      if (!rest.includes(0x0a) && buffered.length < 4096) return
      const strictMode = auto.status === 'ok' && auto.header.version === 2 ? 'v2' : 'v1'
      const report: Report = { auto, strict: parseProxyHeader(buffered, strictMode), rest: rest.toString('latin1') }
      socket.end(JSON.stringify(report, (_key, value: unknown) => {
        // Buffer.toJSON runs before the replacer sees it: turn TLV values into readable text.
        if (typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'Buffer') {
          return Buffer.from((value as { data: number[] }).data).toString('latin1')
        }
        return value
      }) + '\n')
    })
    socket.on('error', () => socket.destroy())
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve(server))
  })
}

/** Connect through HAProxy, send one line, read the backend's JSON reply. Bounded by `ms`. */
function exchange (host: string, port: number, ms = 5000): Promise<{ localPort: number; localAddress: string; report: Report }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port })
    let localPort = 0
    let localAddress = ''
    let data = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no reply through haproxy on ${host}:${port} within ${ms} ms; log:\n${haproxyLog}`)) }, ms)
    socket.setEncoding('latin1')
    socket.on('connect', () => {
      localPort = socket.localPort ?? 0
      localAddress = socket.localAddress ?? ''
      socket.write('ping\n')
    })
    socket.on('data', (chunk: string) => { data += chunk })
    socket.on('error', (err) => { clearTimeout(timer); reject(err) })
    socket.on('close', () => {
      clearTimeout(timer)
      try {
        resolve({ localPort, localAddress, report: JSON.parse(data) as Report })
      } catch {
        reject(new Error(`bad reply ${JSON.stringify(data)}; haproxy log:\n${haproxyLog}`))
      }
    })
  })
}

/** Wait until HAProxy accepts on `port` (bounded): it binds its frontends after parsing the config. */
async function waitForListener (host: string, port: number, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms
  for (let attempt = 0; attempt < 200; attempt++) {
    if (haproxy?.exitCode !== null && haproxy?.exitCode !== undefined) throw new Error(`haproxy exited (${haproxy.exitCode}):\n${haproxyLog}`)
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port })
      const t = setTimeout(() => { s.destroy(); resolve(false) }, 500)
      s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(true) })
      s.once('error', () => { clearTimeout(t); resolve(false) })
    })
    if (up) return
    if (Date.now() > deadline) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`haproxy did not listen on ${host}:${port} within ${ms} ms:\n${haproxyLog}`)
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-pp-haproxy-'))
  backend = await startBackend()
  const address = backend.address()
  assert.ok(address !== null && typeof address === 'object')
  backendPort = address.port
  ;[v1Port, v2Port, v2TlvPort] = await freePorts(3) as [number, number, number]
  v6Port = await freePort('::1')
  const config = `
global
  log stderr format raw local0 info

defaults
  mode tcp
  log global
  timeout connect 2s
  timeout client 10s
  timeout server 10s

frontend fe_v1
  bind 127.0.0.1:${v1Port}
  default_backend be_v1
backend be_v1
  server s1 127.0.0.1:${backendPort} send-proxy

frontend fe_v2
  bind 127.0.0.1:${v2Port}
  default_backend be_v2
backend be_v2
  server s1 127.0.0.1:${backendPort} send-proxy-v2

frontend fe_v2_tlv
  bind 127.0.0.1:${v2TlvPort}
  unique-id-format tlsfleet-%cp
  default_backend be_v2_tlv
backend be_v2_tlv
  server s1 127.0.0.1:${backendPort} send-proxy-v2 proxy-v2-options unique-id

frontend fe_v6
  bind [::1]:${v6Port}
  default_backend be_v6
backend be_v6
  server s1 127.0.0.1:${backendPort} send-proxy
`
  const cfg = path.join(dir, 'haproxy.cfg')
  fs.writeFileSync(cfg, config)
  haproxy = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] })
  haproxy.stdout?.on('data', (b: Buffer) => { haproxyLog += b.toString() })
  haproxy.stderr?.on('data', (b: Buffer) => { haproxyLog += b.toString() })
  haproxy.on('error', (err) => { haproxyLog += `spawn error: ${err.message}\n` })
  await waitForListener('127.0.0.1', v1Port)
  await waitForListener('127.0.0.1', v2Port)
  await waitForListener('127.0.0.1', v2TlvPort)
  await waitForListener('::1', v6Port)
})

after(async () => {
  const child = haproxy
  if (child !== undefined && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(timer)
  }
  await new Promise<void>((resolve) => backend?.close(() => resolve()) ?? resolve())
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
})

function header (result: ProxyParseResult): ProxyHeader {
  assert.equal(result.status, 'ok', JSON.stringify(result))
  if (result.status !== 'ok') throw new Error('unreachable')
  return result.header
}

test('haproxy send-proxy (v1): TCP4 with the client\'s real address and source port', async () => {
  const { localPort, report } = await exchange('127.0.0.1', v1Port)
  assert.deepEqual(report.strict, report.auto)
  const h = header(report.auto)
  assert.equal(h.version, 1)
  assert.equal(h.command, 'proxy')
  assert.equal(h.family, 'tcp4')
  assert.deepEqual(h.source, { address: '127.0.0.1', port: localPort })
  assert.deepEqual(h.destination, { address: '127.0.0.1', port: v1Port })
  assert.deepEqual(h.tlvs, [])
  assert.equal(report.rest, 'ping\n')
})

test('haproxy send-proxy-v2: binary TCP4 with the client\'s real address and source port', async () => {
  const { localPort, report } = await exchange('127.0.0.1', v2Port)
  assert.deepEqual(report.strict, report.auto)
  const h = header(report.auto)
  assert.equal(h.version, 2)
  assert.equal(h.command, 'proxy')
  assert.equal(h.family, 'tcp4')
  assert.deepEqual(h.source, { address: '127.0.0.1', port: localPort })
  assert.deepEqual(h.destination, { address: '127.0.0.1', port: v2Port })
  assert.equal(report.rest, 'ping\n')
})

test('haproxy send-proxy-v2 with proxy-v2-options unique-id: the UNIQUE_ID TLV (0x05) is decoded', async () => {
  const { localPort, report } = await exchange('127.0.0.1', v2TlvPort)
  const h = header(report.strict)
  assert.equal(h.version, 2)
  assert.deepEqual(h.source, { address: '127.0.0.1', port: localPort })
  const unique = h.tlvs.filter((t) => t.type === 0x05)
  assert.equal(unique.length, 1, JSON.stringify(h.tlvs))
  // The replacer in the backend turned the value into text.
  assert.equal(unique[0]?.value as unknown, `tlsfleet-${localPort}`)
  assert.equal(report.rest, 'ping\n')
})

test('haproxy send-proxy (v1) from an IPv6 client: TCP6 with canonical addresses', async () => {
  const { localPort, localAddress, report } = await exchange('::1', v6Port)
  assert.equal(localAddress, '::1')
  const h = header(report.strict)
  assert.equal(h.version, 1)
  assert.equal(h.family, 'tcp6')
  assert.deepEqual(h.source, { address: '::1', port: localPort })
  assert.deepEqual(h.destination, { address: '::1', port: v6Port })
})
