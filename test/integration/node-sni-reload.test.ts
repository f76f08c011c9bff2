import assert from 'node:assert/strict'
import fs from 'node:fs'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { eventually, startNode, type RunningNode } from '../helpers/node-process.js'
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
  const p384Ecdsa = makeCertificate(dir, 'p384-ecdsa', ['p384.test'], 'ecdsa-p384')
  const p384Rsa = makeCertificate(dir, 'p384-rsa', ['p384.test'], 'rsa')
  const edFirst = makeCertificate(dir, 'ed', ['ed.test'], 'ed25519')
  const edRsa = makeCertificate(dir, 'ed-rsa', ['ed.test'], 'rsa')
  backend = await startRecordingBackend()
  let admin: number
  ;[port, admin] = await freePorts(2) as [number, number]
  node = await startNode([
    '--workers', '2', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`,
    '--cert', defaultCert, '--cert', exact, '--cert', wildcard, '--cert', pairRsa, '--cert', pairEcdsa,
    '--cert', p384Ecdsa, '--cert', p384Rsa, '--cert', edFirst, '--cert', edRsa
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
    // TLS 1.2: OpenSSL follows the client's cipher order here (Node's own default lists ECDHE-RSA first).
    ['a TLS 1.2 client preferring ECDSA suites', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256' }, 'ec'],
    ['a TLS 1.2 client preferring RSA suites', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256' }, 'rsa'],
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
  const served = async (servername: string, extra: string[]): Promise<string> => {
    const result = await sClient({ port, servername, extra })
    assert.match(result.output, /^(New|Reused), /m, `${servername} ${extra.join(' ')}: no handshake\n${result.output}`)
    const type = /Peer signature type: (\S+)/.exec(result.output)?.[1] ?? '?'
    const bits = /Server public key is (\d+) bit/.exec(result.output)?.[1] ?? '?'
    return type === 'ECDSA' ? `ecdsa-${bits}` : type.startsWith('RSA') ? `rsa-${bits}` : type
  }
  // OpenSSL picks: by the cipher suites a TLS 1.2 client offers, by the curve a TLS 1.3 scheme
  // names, and between Ed25519 and RSA (the first given) by the schemes.
  assert.equal(await served('pair.test', ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256']), 'rsa-2048', 'no ECDSA suite offered: RSA')
  assert.equal(await served('pair.test', ['-tls1_3']), 'ecdsa-256')
  assert.equal(await served('p384.test', ['-tls1_3', '-sigalgs', 'ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256']), 'rsa-2048', 'a P-384 certificate for a client whose schemes name only P-256: RSA')
  assert.equal(await served('p384.test', ['-tls1_3']), 'ecdsa-384')
  assert.equal(await served('ed.test', ['-tls1_3', '-sigalgs', 'rsa_pss_rsae_sha256:RSA+SHA256']), 'rsa-2048', 'Ed25519 given first, RSA for a client without Ed25519')
  assert.equal(await served('ed.test', ['-tls1_3', '-sigalgs', 'ed25519']), 'ed25519')
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
  await eventually(async () => await node.metric('tlsfleet_certificate_reloads_total', { result: 'ok' }) === 1, 5000, 'the reload counted')
  // When the served certificate expires, by file and name, as a Unix time.
  const expiry = await node.metric('tlsfleet_certificate_expiry_timestamp_seconds', { file: defaultCert, name: 'renewed.test' })
  assert.ok(expiry > Date.now() / 1000 && expiry < Date.now() / 1000 + 3 * 365 * 86400, `expiry ${expiry}`)

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
  // systemctl reload cannot tell; the metric can.
  await eventually(async () => await node.metric('tlsfleet_certificate_reloads_total', { result: 'refused' }) === 1, 5000, 'the refused reload counted')
  assert.equal(await node.metric('tlsfleet_certificate_reloads_total', { result: 'ok' }), 1)
})
