import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, test } from 'node:test'
import type { CertificatesBody } from '../../src/admin/schemas.js'
import { runCli } from '../helpers/agent.js'
import { tempDir } from '../helpers/certs.js'
import { eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { stopProcess, TestCa, type Issued } from '../helpers/pki.js'
import { freePorts } from '../helpers/ports.js'

// A certificate replaced on SIGHUP is served with its staple from the first handshake on: the
// primary fetches the new certificate's first response before the workers switch, and sends
// certificates and staples in one message. The responder answers 700 ms late (a proxy in front
// of a real `openssl ocsp`), so a worker given the certificate before its staple would serve
// clients unstapled meanwhile (a must-staple certificate fails them).
const RESPONDER_DELAY_MS = 700
const dir = tempDir()
const ca = new TestCa(path.join(dir, 'ca'))
const served = path.join(dir, 'served.pem')
let responder: ChildProcess | undefined
const servers: net.Server[] = []
let node: RunningNode
let port: number
let slowUrl: string
let hangingUrl: string
let certs: Record<'first' | 'second' | 'third', Issued>

before(async () => {
  const [responderPort, slowPort, hangingPort, tlsPort, admin] = await freePorts(5) as [number, number, number, number, number]
  port = tlsPort
  slowUrl = `http://127.0.0.1:${slowPort}/`
  hangingUrl = `http://127.0.0.1:${hangingPort}/`
  // Issued before the responder starts: `openssl ocsp` reads the CA's index once.
  certs = { first: issue('first', slowUrl), second: issue('second', slowUrl), third: issue('third', hangingUrl) }
  responder = await ca.startResponder(responderPort, { minutes: 60 })
  servers.push(await listen(slowPort, (client) => {
    client.pause()
    setTimeout(() => {
      const upstream = net.connect(responderPort, '127.0.0.1')
      client.pipe(upstream).pipe(client)
      client.resume()
      upstream.on('error', () => client.destroy())
      client.on('error', () => upstream.destroy())
    }, RESPONDER_DELAY_MS)
  }))
  servers.push(await listen(hangingPort, () => { /* accept and never answer */ }))
  fs.copyFileSync(certs.first.bundle, served)
  node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--ocsp-dir', path.join(dir, 'ocsp'), '--cert', served], { adminPort: admin })
})

after(async () => {
  await node?.stop()
  await stopProcess(responder)
  for (const server of servers) server.close()
})

function issue (name: string, ocspUrl: string): Issued {
  return ca.issue(name, { names: ['reload.test'], usage: 'server', ocspUrl, keyType: 'ecdsa' })
}

async function listen (p: number, onConnection: (socket: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer(onConnection)
  await new Promise<void>((resolve) => server.listen(p, '127.0.0.1', resolve))
  return server
}

/** The serial of the certificate served to a client asking for a staple, and of the staple's certificate. */
async function handshake (): Promise<{ serial: string; stapledSerial: string | undefined; output: string }> {
  const result = await sClient({ port, servername: 'reload.test', tls: '1.3', extra: ['-status'] })
  // The OCSP response printed before it may hold the responder's certificate.
  const pem = /Server certificate\r?\n(-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----)/.exec(result.output)?.[1]
  assert.ok(pem !== undefined, result.output)
  return {
    serial: new crypto.X509Certificate(pem).serialNumber.toUpperCase(),
    stapledSerial: /Certificate ID:[\s\S]*?Serial Number: ([0-9A-F]+)/i.exec(result.output)?.[1]?.toUpperCase(),
    output: result.output
  }
}

function serialOf (issued: Issued): string {
  return new crypto.X509Certificate(fs.readFileSync(issued.cert)).serialNumber.toUpperCase()
}

/** SIGHUP after putting `issued` in the served file; resolves when the worker has the new certificates. */
async function replaceAndReload (issued: Issued): Promise<number> {
  fs.copyFileSync(issued.bundle, served)
  const before = node.logs.length
  const started = Date.now()
  node.process.kill('SIGHUP')
  await node.waitForLog((l) => node.logs.indexOf(l) >= before && l.msg === 'certificates reloaded' && l.name !== 'primary', 15_000)
  return Date.now() - started
}

test('a certificate replaced on SIGHUP is stapled from the first handshake after the reload', async () => {
  await eventually(async () => (await handshake()).stapledSerial !== undefined, 15_000, 'the first certificate stapled')
  const second = certs.second
  await replaceAndReload(second)
  const got = await handshake()
  assert.equal(got.serial, serialOf(second), 'the replaced certificate is served')
  assert.equal(got.stapledSerial, serialOf(second), `the first handshake after the reload carries the new certificate's staple:\n${got.output}`)
  const primaryLine = node.logs.findLast((l) => l.msg === 'certificates reloaded' && l.name === 'primary')
  assert.equal(primaryLine?.withoutStaple, undefined)
  const [view] = (await certificateView()).certificates
  assert.equal(view?.ocsp?.status, 'good')
  // The test CA's certificates last two days: near their end, but stapled.
  assert.deepEqual(view?.attention, ['expiring'])
  assert.ok(Date.parse(view?.ocsp?.nextUpdate ?? '') > Date.now() + 50 * 60_000, `nextUpdate ${view?.ocsp?.nextUpdate ?? ''}`)
  const status = await runCli(['status', '--admin', node.adminUrl])
  assert.match(status.stdout, /^OCSP\s+1 of 1 stapled$/m, status.stdout + status.stderr)
})

test('a reload whose new certificate\'s responder never answers goes on without its staple after a bounded wait', async () => {
  const third = certs.third
  const ms = await replaceAndReload(third)
  assert.ok(ms >= 2500 && ms < 8000, `the reload waited ${ms} ms for the first response (3 s at most)`)
  const got = await handshake()
  assert.equal(got.serial, serialOf(third), 'the replaced certificate is served')
  assert.match(got.output, /OCSP response: no response sent/)
  const primaryLine = node.logs.findLast((l) => l.msg === 'certificates reloaded' && l.name === 'primary')
  assert.deepEqual(primaryLine?.withoutStaple, [served])
  const body = await certificateView()
  assert.equal(body.ocspStapling, true)
  assert.equal(body.certificates[0]?.ocsp?.status, 'none')
  assert.match(body.certificates[0]?.ocsp?.reason ?? '', /^(no response fetched yet|last fetch failed: .+)$/)
  assert.deepEqual(body.certificates[0]?.attention, ['expiring', 'unstapled'])
  const status = await runCli(['status', '--admin', node.adminUrl])
  assert.match(status.stdout, /^OCSP\s+0 of 1 stapled$/m, status.stdout + status.stderr)
  assert.match(status.stdout, /^\s+reload\.test \(.*served\.pem\): no staple \(/m)
})

async function certificateView (): Promise<CertificatesBody> {
  const res = await fetch(`${node.adminUrl}/v1/certificates`, { signal: AbortSignal.timeout(5000) })
  assert.equal(res.status, 200)
  return await res.json() as CertificatesBody
}
