import assert from 'node:assert/strict'
import fs from 'node:fs'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'

let node: RunningNode
let port: number
let dir: string
let defaultCert: string
let backend: Awaited<ReturnType<typeof startRecordingBackend>>

before(async () => {
  dir = tempDir()
  defaultCert = makeCertificate(dir, 'default', ['default.test'])
  const exact = makeCertificate(dir, 'exact', ['app.example.test'], 'rsa')
  const wildcard = makeCertificate(dir, 'wildcard', ['*.ec.example.test'], 'ecdsa')
  // One name with an RSA and an ECDSA certificate (HAProxy serves each client the one it can verify).
  const pairRsa = makeCertificate(dir, 'pair-rsa', ['pair.test'], 'rsa')
  const pairEcdsa = makeCertificate(dir, 'pair-ecdsa', ['pair.test'], 'ecdsa')
  backend = await startRecordingBackend()
  let admin: number
  ;[port, admin] = await freePorts(2) as [number, number]
  node = await startNode([
    '--workers', '2', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`,
    '--cert', defaultCert, '--cert', exact, '--cert', wildcard, '--cert', pairRsa, '--cert', pairEcdsa
  ], { adminPort: admin })
})

after(async () => {
  await node?.stop()
  await backend?.close()
})

async function peer (servername?: string, options: tls.ConnectionOptions = {}): Promise<{ cn: string; keyType: string; socket: tls.TLSSocket }> {
  const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...(servername !== undefined ? { servername } : {}), ...options })
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  const cert = socket.getPeerCertificate()
  const keyType = cert.pubkey !== undefined && cert.bits === 2048 ? 'rsa' : (cert.asn1Curve !== undefined ? 'ec' : 'other')
  return { cn: String(cert.subject.CN), keyType, socket }
}

test('SNI picks the certificate by exact name, by wildcard, and falls back to the first', async () => {
  const cases: Array<[string | undefined, string, string]> = [
    ['app.example.test', 'app.example.test', 'rsa'],
    ['a.ec.example.test', '*.ec.example.test', 'ec'],
    ['APP.Example.Test', 'app.example.test', 'rsa'],
    ['b.a.ec.example.test', 'default.test', 'rsa'], // a wildcard covers one label only
    ['unknown.test', 'default.test', 'rsa'],
    [undefined, 'default.test', 'rsa']
  ]
  for (const [servername, cn, keyType] of cases) {
    const got = await peer(servername)
    got.socket.destroy()
    assert.equal(got.cn, cn, `servername ${String(servername)}`)
    assert.equal(got.keyType, keyType, `servername ${String(servername)}`)
  }
})

test('a name with an RSA and an ECDSA certificate: each client gets the one it can verify (Node and openssl clients, TLS 1.2 and 1.3)', async () => {
  const cases: Array<[string, tls.ConnectionOptions, string]> = [
    ['default client, TLS 1.3', {}, 'ec'],
    ['default client, TLS 1.2', { maxVersion: 'TLSv1.2' }, 'ec'],
    ['RSA signatures only, TLS 1.3', { sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' }, 'rsa'],
    ['RSA signatures only, TLS 1.2', { maxVersion: 'TLSv1.2', sigalgs: 'RSA+SHA256:RSA-PSS+SHA256' }, 'rsa'],
    ['ECDSA signatures only, TLS 1.2', { maxVersion: 'TLSv1.2', sigalgs: 'ECDSA+SHA256' }, 'ec']
  ]
  for (const [what, options, keyType] of cases) {
    const got = await peer('pair.test', options)
    got.socket.destroy()
    assert.equal(got.cn, 'pair.test', what)
    assert.equal(got.keyType, keyType, what)
  }
  const rsaOnly = await sClient({ port, servername: 'pair.test', tls: '1.2', extra: ['-sigalgs', 'RSA+SHA256', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'] })
  assert.match(rsaOnly.output, /Peer signature type: RSA|Server public key is 2048 bit/, rsaOnly.output)
  const any = await sClient({ port, servername: 'pair.test', tls: '1.3' })
  assert.match(any.output, /Server public key is 256 bit/, any.output)
})

test('SIGHUP reloads certificates without dropping an established connection', async () => {
  const open = await peer('default.test')
  assert.equal(open.cn, 'default.test')
  const replies: string[] = []
  open.socket.on('data', (d: Buffer) => replies.push(d.toString()))

  // Replace the file's content with a new certificate for another name, then reload.
  const fresh = makeCertificate(dir, 'fresh', ['renewed.test'])
  fs.copyFileSync(fresh, defaultCert)
  node.process.kill('SIGHUP')
  await node.waitForLog((l) => l.msg === 'certificates reloaded' && l.name === 'primary', 10_000)
  const deadline = Date.now() + 10_000
  let cn = ''
  while (Date.now() < deadline) {
    const got = await peer()
    got.socket.destroy()
    cn = got.cn
    if (cn === 'renewed.test') break
  }
  assert.equal(cn, 'renewed.test', 'new connections did not get the reloaded certificate')

  // The connection opened before the reload still works both ways.
  open.socket.write('still-here')
  const start = Date.now()
  while (!replies.join('').includes('echo:still-here') && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 50))
  assert.ok(replies.join('').includes('echo:still-here'), 'old connection broke on reload')
  open.socket.destroy()
})

test('a reload with a broken certificate file is refused and the node keeps serving', async () => {
  fs.writeFileSync(defaultCert, 'not a certificate')
  node.process.kill('SIGHUP')
  await node.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('certificate reload refused'), 10_000)
  const got = await peer()
  got.socket.destroy()
  assert.equal(got.cn, 'renewed.test')
})
