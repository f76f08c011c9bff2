import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { sslv2ClientHello } from '../helpers/client-hello.js'
import { runNodeToExit, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { freePorts } from '../helpers/ports.js'

// What real openssl s_client clients get from nodes under each TLS policy, and the policies a
// node refuses to start with. The client side is lowered to security level 0 where it must
// offer what Debian's OpenSSL would not (TLS 1.1), so the refusal measured is the node's.
const dir = tempDir()
const cert = makeCertificate(dir, 'rsa', ['app.test'])
let intermediate: RunningNode
let modern: RunningNode
let tuned: RunningNode
const ports = { intermediate: 0, modern: 0, tuned: 0 }

before(async () => {
  const [p1, a1, p2, a2, p3, a3] = await freePorts(6) as [number, number, number, number, number, number]
  Object.assign(ports, { intermediate: p1, modern: p2, tuned: p3 })
  const common = ['--workers', '1', '--cert', cert]
  ;[intermediate, modern, tuned] = await Promise.all([
    // The built-in demo backend, told the TLS facts in PROXY v2 TLVs, answers with them.
    startNode([...common, '--listen', `127.0.0.1:${p1}`, '--proxy-protocol-out', 'v2', '--alpn', 'http/1.1'], { adminPort: a1 }),
    startNode([...common, '--listen', `127.0.0.1:${p2}`, '--tls-profile', 'modern'], { adminPort: a2 }),
    startNode([...common, '--listen', `127.0.0.1:${p3}`, '--tls-max-version', 'TLSv1.2', '--ciphers', 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256',
      '--prefer-server-ciphers', 'on', '--ecdh-curves', 'secp384r1'], { adminPort: a3 })
  ])
})

after(async () => { await Promise.all([intermediate?.stop(), modern?.stop(), tuned?.stop()]) })

const TLS11 = ['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0']

test('intermediate (the default): TLS 1.2 and 1.3 only, the profile\'s ciphers and groups only', async () => {
  const port = ports.intermediate
  assert.equal((await sClient({ port, servername: 'app.test', extra: TLS11 })).protocol, undefined, 'TLS 1.1 was accepted')
  assert.equal((await sClient({ port, servername: 'app.test', tls: '1.2' })).protocol, 'TLSv1.2')
  assert.equal((await sClient({ port, servername: 'app.test', tls: '1.3' })).protocol, 'TLSv1.3')
  const gcm = await sClient({ port, servername: 'app.test', tls: '1.2', extra: ['-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'] })
  assert.match(gcm.output, /Cipher is ECDHE-RSA-AES128-GCM-SHA256/)
  assert.equal((await sClient({ port, servername: 'app.test', tls: '1.2', extra: ['-cipher', 'AES128-SHA'] })).protocol, undefined, 'a cipher outside the profile was accepted')
  assert.equal((await sClient({ port, servername: 'app.test', tls: '1.3', extra: ['-groups', 'secp521r1'] })).protocol, undefined, 'a group outside the profile was accepted')
  assert.equal((await sClient({ port, servername: 'app.test', tls: '1.3', extra: ['-groups', 'X25519'] })).protocol, 'TLSv1.3')
  assert.ok(await intermediate.metric('tlsfleet_handshake_failures_total', { reason: 'tls_error' }) >= 3)
})

test('modern: TLS 1.3 only', async () => {
  assert.equal((await sClient({ port: ports.modern, servername: 'app.test', tls: '1.2' })).protocol, undefined, 'TLS 1.2 was accepted')
  const ok = await sClient({ port: ports.modern, servername: 'app.test', tls: '1.3', extra: ['-ciphersuites', 'TLS_CHACHA20_POLY1305_SHA256'] })
  assert.match(ok.output, /Cipher is TLS_CHACHA20_POLY1305_SHA256/)
})

test('overrides: max version, cipher list in the server\'s order, one curve', async () => {
  const port = ports.tuned
  assert.equal((await sClient({ port, servername: 'app.test', tls: '1.3' })).protocol, undefined, 'TLS 1.3 was accepted above --tls-max-version')
  // The client prefers AES128; with --prefer-server-ciphers on the node's first choice wins.
  const clientOrder = ['-cipher', 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384']
  assert.match((await sClient({ port, servername: 'app.test', tls: '1.2', extra: clientOrder })).output, /Cipher is ECDHE-RSA-AES256-GCM-SHA384/)
  // Without it (intermediate), the client's first choice wins.
  assert.match((await sClient({ port: ports.intermediate, servername: 'app.test', tls: '1.2', extra: clientOrder })).output, /Cipher is ECDHE-RSA-AES128-GCM-SHA256/)
  assert.equal((await sClient({ port, servername: 'app.test', tls: '1.2', extra: ['-groups', 'prime256v1'] })).protocol, undefined, 'a curve outside --ecdh-curves was accepted')
  assert.match((await sClient({ port, servername: 'app.test', tls: '1.2', extra: ['-groups', 'secp384r1:prime256v1'] })).output, /Server Temp Key: ECDH, (secp384r1|P-384)/)
})

test('a client that asks to renegotiate TLS 1.2 is refused (hitch and HAProxy refuse it too); --ciphersuites in lower case is the suite it names', async () => {
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--cert', cert, '--listen', `127.0.0.1:${port}`, '--ciphersuites', 'tls_aes_128_gcm_sha256'], { adminPort: admin })
  try {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'app.test', maxVersion: 'TLSv1.2', rejectUnauthorized: false })
    socket.on('error', () => {})
    await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
    const outcome = await new Promise<string>((resolve) => {
      const asked = socket.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err === null ? 'renegotiated' : `refused: ${err.message}`))
      if (!asked) resolve('refused at once')
      socket.once('close', () => resolve('closed'))
      // OpenSSL answers with a no_renegotiation warning alert: the client's request stays unanswered.
      setTimeout(() => resolve('not renegotiated within 2 s'), 2000).unref()
    })
    socket.destroy()
    assert.notEqual(outcome, 'renegotiated')
    // The suite named in lower case is the one served; another is refused (it used to be dropped, leaving OpenSSL's defaults).
    assert.match((await sClient({ port, servername: 'app.test', tls: '1.3', extra: ['-ciphersuites', 'TLS_AES_128_GCM_SHA256'] })).output, /Cipher is TLS_AES_128_GCM_SHA256/)
    assert.equal((await sClient({ port, servername: 'app.test', tls: '1.3', extra: ['-ciphersuites', 'TLS_AES_256_GCM_SHA384'] })).protocol, undefined, 'a suite outside --ciphersuites was accepted')
  } finally {
    await node.stop()
  }
})

test('--sigalgs: a client offering a listed signature algorithm connects (TLS 1.2 and 1.3), one offering only others is refused', async () => {
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--cert', cert, '--listen', `127.0.0.1:${port}`, '--sigalgs', 'rsa_pss_rsae_sha256:ECDSA+SHA256'], { adminPort: admin })
  try {
    for (const version of ['1.2', '1.3'] as const) {
      const listed = await sClient({ port, servername: 'app.test', tls: version, extra: ['-sigalgs', 'rsa_pss_rsae_sha256'] })
      assert.equal(listed.protocol, `TLSv${version}`, listed.output)
      assert.match(listed.output, /Peer signing digest: SHA256/)
      // Without --sigalgs the node signs with this one (the intermediate node below): the refusal is the option's.
      const other = ['-sigalgs', 'rsa_pss_rsae_sha384']
      assert.equal((await sClient({ port, servername: 'app.test', tls: version, extra: other })).protocol, undefined, `TLS ${version}: a signature algorithm outside --sigalgs was accepted`)
      const control = await sClient({ port: ports.intermediate, servername: 'app.test', tls: version, extra: other })
      assert.match(control.output, /Peer signing digest: SHA384/, `TLS ${version}: the intermediate node`)
    }
  } finally {
    await node.stop()
  }
})

/** The first bytes a node answers `hello` with ('' if it closed without a byte). */
async function firstAnswer (port: number, hello: Buffer): Promise<Buffer> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(hello)
  return await new Promise<Buffer>((resolve) => {
    socket.once('data', (d: Buffer) => { resolve(d); socket.destroy() })
    socket.once('close', () => resolve(Buffer.alloc(0)))
  })
}

test('the old profile answers a ClientHello in the SSLv2-compatible format (Java 6 sends it) with a ServerHello, as OpenSSL and HAProxy 2.6 do; intermediate with an alert', async () => {
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--cert', cert, '--listen', `127.0.0.1:${port}`, '--tls-profile', 'old'], { adminPort: admin })
  try {
    const answer = await firstAnswer(port, sslv2ClientHello(0x0301))
    // A handshake record of TLS 1.0 whose first message is a ServerHello (2); it was closed unanswered (not_tls).
    assert.deepEqual([...answer.subarray(0, 3)], [0x16, 0x03, 0x01], `answered ${answer.subarray(0, 8).toString('hex')}`)
    assert.equal(answer[5], 2)
    assert.equal(await node.metric('tlsfleet_handshake_failures_total', { reason: 'not_tls' }), 0)
  } finally {
    await node.stop()
  }
  // Under intermediate OpenSSL refuses it (no signature algorithm a TLS 1.2 hello without extensions allows): a fatal alert.
  const alert = await firstAnswer(ports.intermediate, sslv2ClientHello(0x0303))
  assert.equal(alert[0], 0x15, `answered ${alert.subarray(0, 8).toString('hex')}`)
})

test('DHE ciphers named by a keyword (--ciphers HIGH:!aNULL:!MD5), not only by name, get parameters and negotiate', async () => {
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--cert', cert, '--listen', `127.0.0.1:${port}`, '--ciphers', 'HIGH:!aNULL:!MD5'], { adminPort: admin })
  try {
    const dhe = await sClient({ port, servername: 'app.test', tls: '1.2', extra: ['-cipher', 'DHE-RSA-AES128-GCM-SHA256'] })
    assert.match(dhe.output, /Cipher is DHE-RSA-AES128-GCM-SHA256/)
  } finally {
    await node.stop()
  }
})

test('the demo backend shows what was negotiated, from the PROXY v2 TLVs', async () => {
  const socket = tls.connect({ port: ports.intermediate, host: '127.0.0.1', servername: 'app.test', ALPNProtocols: ['http/1.1'], rejectUnauthorized: false })
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString() })
  socket.write('GET /tlv HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n')
  await new Promise<void>((resolve) => socket.once('end', resolve))
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { tls?: { alpn?: string; authority?: string } }
  assert.deepEqual({ alpn: body.tls?.alpn, authority: body.tls?.authority }, { alpn: 'http/1.1', authority: 'app.test' })
})

test('bad TLS input is refused at start, naming the option and the value (exit 2, nothing bound)', async () => {
  const notPem = path.join(dir, 'ca.txt')
  fs.writeFileSync(notPem, 'this is not a certificate\n')
  const notDir = path.join(dir, 'ocsp-file')
  fs.writeFileSync(notDir, '')
  const [port, admin] = await freePorts(2) as [number, number]
  const base = ['--workers', '1', '--cert', cert, '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${admin}`]
  const cases: Array<[string[], RegExp]> = [
    [['--ciphers', 'ECDHE-RSA-AES128-GCM-SHA256:NOT-A-CIPHER'], /--ciphers: "NOT-A-CIPHER" matches no cipher of this node's OpenSSL .* \(TLSFLEET_ERR_CONFIG\)/],
    [['--ecdh-curves', 'X25519:P-999'], /--ecdh-curves: "P-999" is not a group this node's OpenSSL .* knows/],
    [['--sigalgs', 'ECDSA+SHA256:RSA+MD5'], /--sigalgs: "RSA\+MD5" is not a signature algorithm this node's OpenSSL .* accepts/],
    [['--ciphersuites', 'TLS_AES_128_CBC_SHA'], /--ciphersuites: "TLS_AES_128_CBC_SHA" is not a TLS 1.3 suite/],
    [['--client-verify', 'require', '--client-ca', notPem], /--client-ca ".*ca\.txt": no PEM certificate in it/],
    [['--client-verify', 'optional', '--client-ca', cert, '--crl', notPem], /--crl ".*ca\.txt": no PEM CRL in it/],
    [['--ocsp-dir', notDir], /--ocsp-dir ".*ocsp-file": not a directory/],
    [['--tls-min-version', 'TLSv1.3', '--tls-max-version', 'TLSv1.2'], /--tls-min-version TLSv1.3 \(TLSv1.3\) is above --tls-max-version TLSv1.2 .*TLSFLEET_ERR_CONFIG_CONFLICT/]
  ]
  for (const [args, expected] of cases) {
    const result = await runNodeToExit([...base, ...args])
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
    assert.match(result.stderr, expected)
    assert.equal(result.stderr.trimEnd().split('\n').length, 1, 'one line')
  }
})
