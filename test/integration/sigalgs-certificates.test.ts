import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { capturedClientHello } from '../helpers/client-hello.js'
import { eventually, runNodeToExit, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { freePorts } from '../helpers/ports.js'
import { byteRecords, rawExchange } from '../helpers/tls-client.js'

// --sigalgs against the certificates given: tlsfleet, not OpenSSL, picks one certificate of a
// name on the stapling path (Node staples one certificate per context), and a certificate no
// listed algorithm signs with is never served. Real node, real openssl s_client.
const dir = tempDir()
const rsa = makeCertificate(dir, 'pair-rsa', ['pair.test'], 'rsa')
const ecdsa = makeCertificate(dir, 'pair-ecdsa', ['pair.test'], 'ecdsa')

/** The key type of the certificate a handshake got ('?' when there was no handshake), and s_client's output. */
async function served (port: number, opts: { servername?: string; tls: '1.2' | '1.3'; extra?: string[] }): Promise<{ key: string; output: string }> {
  const result = await sClient({ port, ...opts, extra: ['-status', ...(opts.extra ?? [])] })
  if (!/^(New|Reused), TLS/m.test(result.output)) return { key: '?', output: result.output }
  const type = /Peer signature type: (\S+)/.exec(result.output)?.[1] ?? '?'
  return { key: type === 'ECDSA' ? 'ecdsa' : type.startsWith('RSA') ? 'rsa' : type, output: result.output }
}

let node: RunningNode
let port: number

before(async () => {
  const [tlsPort, admin] = await freePorts(2) as [number, number]
  port = tlsPort
  // RSA given first, and --sigalgs signs an RSA key with PKCS#1 only, which TLS 1.3 never uses:
  // RSA serves TLS 1.2 only. --ocsp-dir turns stapling on (one certificate per context).
  node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--cert', rsa, '--cert', ecdsa,
    '--ocsp-dir', path.join(dir, 'ocsp'), '--sigalgs', 'ECDSA+SHA384:RSA+SHA256:ecdsa_secp256r1_sha256'], { adminPort: admin })
})

after(async () => { await node?.stop() })

test('stapling, no SNI: the default name gets a certificate the node can sign the version with (RSA given first signs only TLS 1.2 here)', async () => {
  for (const version of ['1.3', '1.2'] as const) {
    const got = await served(port, { tls: version })
    assert.equal(got.key, 'ecdsa', `TLS ${version}: no handshake or the RSA certificate, which --sigalgs does not sign TLS 1.3 with\n${got.output}`)
  }
})

test('stapling, SNI: a TLS 1.2 client whose ECDSA hash --sigalgs does not list gets RSA; one whose hash it lists gets ECDSA', async () => {
  // The client offers ECDSA+SHA512 and RSA+SHA256; the node signs ECDSA with SHA-256/384 only.
  const rsaOnly = await served(port, { servername: 'pair.test', tls: '1.2', extra: ['-sigalgs', 'ECDSA+SHA512:RSA+SHA256'] })
  assert.equal(rsaOnly.key, 'rsa', rsaOnly.output)
  const ecdsaOk = await served(port, { servername: 'pair.test', tls: '1.2', extra: ['-sigalgs', 'ECDSA+SHA384:RSA+SHA256'] })
  assert.equal(ecdsaOk.key, 'ecdsa', ecdsaOk.output)
  const tls13 = await served(port, { servername: 'pair.test', tls: '1.3' })
  assert.equal(tls13.key, 'ecdsa', tls13.output)
})


test('a ClientHello the worker cannot read ahead (its version unknown): the certificate --sigalgs signs every version with, so TLS 1.3 is answered', async () => {
  // One byte a record: more records than the worker reads ahead; OpenSSL reads it and asks the SNI callback.
  const hello = await capturedClientHello('pair.test', { maxVersion: 'TLSv1.3' })
  const fragmented = byteRecords(hello)
  const answer = await rawExchange(port, fragmented)
  // A handshake record whose first message is a ServerHello (2), not a handshake_failure alert (21 ... 40).
  assert.deepEqual([answer[0], answer[5]], [0x16, 0x02], `answered ${answer.subarray(0, 7).toString('hex')} (${answer.length} bytes)`)
})

test('a certificate no --sigalgs algorithm signs with is refused at start, named by the option as given, the file and why', async () => {
  const refusals: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--cert', rsa, '--sigalgs', 'ECDSA+SHA256'], {}, /^tlsfleet: --cert ".*pair-rsa\.pem": no signature algorithm of --sigalgs "ECDSA\+SHA256" signs with its rsa key/m],
    [['--cert', rsa], { TLSFLEET_SIGALGS: 'ecdsa_secp256r1_sha256:ed25519' }, /^tlsfleet: --cert ".*pair-rsa\.pem": no signature algorithm of TLSFLEET_SIGALGS "ecdsa_secp256r1_sha256:ed25519" signs with its rsa key/m],
    // TLS 1.3 binds ECDSA to a curve: the P-256 key signs nothing under a TLS 1.3-only profile listing only P-384's scheme.
    [['--cert', ecdsa, '--tls-profile', 'modern', '--sigalgs', 'ECDSA+SHA384:rsa_pss_rsae_sha256'], {}, /^tlsfleet: --cert ".*pair-ecdsa\.pem": no signature algorithm of --sigalgs "ECDSA\+SHA384:rsa_pss_rsae_sha256" signs with its ec key \(prime256v1\) in TLS 1\.3/m],
    // No --cert: the generated self-signed certificate (RSA) is checked too.
    [['--state-dir', path.join(dir, 'state-self-signed'), '--sigalgs', 'ECDSA+SHA256'], {}, /^tlsfleet: certificate ".*self-signed\.pem": no signature algorithm of --sigalgs "ECDSA\+SHA256" signs with its rsa key/m]
  ]
  const [tlsPort, admin] = await freePorts(2) as [number, number]
  for (const [args, env, expected] of refusals) {
    const run = await runNodeToExit(['--workers', '1', '--listen', `127.0.0.1:${tlsPort}`, '--admin-listen', `127.0.0.1:${admin}`, ...args], { env })
    assert.notEqual(run.code, 0, `${args.join(' ')}: started`)
    assert.match(run.stderr, expected, run.stderr)
  }
})

test('--cert-dir: a file no --sigalgs algorithm signs with is refused by name at start and at SIGHUP; the others serve', async () => {
  const certDir = path.join(dir, 'certs')
  fs.mkdirSync(certDir)
  fs.copyFileSync(ecdsa, path.join(certDir, 'a-ecdsa.pem'))
  fs.copyFileSync(rsa, path.join(certDir, 'b-rsa.pem'))
  const [tlsPort, admin] = await freePorts(2) as [number, number]
  const dirNode = await startNode(['--workers', '1', '--listen', `127.0.0.1:${tlsPort}`, '--cert-dir', certDir], { adminPort: admin, env: { TLSFLEET_SIGALGS: 'ECDSA+SHA256' } })
  try {
    const refused = (file: string): boolean => dirNode.logs.some((l) => String(l.error).startsWith(`--cert-dir file "${path.join(certDir, file)}": no signature algorithm of TLSFLEET_SIGALGS "ECDSA+SHA256" signs with its rsa key`))
    assert.ok(refused('b-rsa.pem'), dirNode.logs.filter((l) => l.error !== undefined).map((l) => String(l.error)).join('\n'))
    assert.equal((await served(tlsPort, { servername: 'pair.test', tls: '1.3' })).key, 'ecdsa')
    fs.copyFileSync(rsa, path.join(certDir, 'c-rsa.pem'))
    dirNode.process.kill('SIGHUP')
    await eventually(() => refused('c-rsa.pem'), 15_000, 'the RSA file added refused at SIGHUP')
    assert.equal((await served(tlsPort, { servername: 'pair.test', tls: '1.2' })).key, 'ecdsa')
  } finally {
    await dirNode.stop()
  }
})
