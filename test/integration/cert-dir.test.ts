import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { runNodeToExit, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { freePorts } from '../helpers/ports.js'

// --cert-dir: every PEM file of a directory, names read from the certificates, re-read on
// SIGHUP; a broken file is reported by name and the others still load.
const dir = tempDir()
const certDir = path.join(dir, 'certs')
let node: RunningNode
let port: number

before(async () => {
  fs.mkdirSync(path.join(certDir, 'nested'), { recursive: true })
  const scratch = path.join(dir, 'scratch')
  fs.mkdirSync(scratch)
  fs.renameSync(makeCertificate(scratch, 'a', ['a.test']), path.join(certDir, 'a.pem'))
  fs.renameSync(makeCertificate(scratch, 'b', ['b.test', '*.b.test'], 'ecdsa'), path.join(certDir, 'b.pem'))
  fs.writeFileSync(path.join(certDir, 'broken.pem'), '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n')
  fs.writeFileSync(path.join(certDir, 'notes.txt'), 'not a .pem file: skipped')
  let admin: number
  ;[port, admin] = await freePorts(2) as [number, number]
  node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--cert-dir', certDir], { adminPort: admin })
})

after(async () => { await node?.stop() })

async function served (servername?: string): Promise<string | undefined> {
  const result = await sClient({ port, ...(servername !== undefined ? { servername } : {}), tls: '1.3' })
  return /CN ?= ?([^\s,]+)/.exec(result.subject ?? '')?.[1]
}

test('every PEM file of the directory serves its names; a broken one is named in the log and skipped', async () => {
  assert.equal(await served('a.test'), 'a.test')
  assert.equal(await served('b.test'), 'b.test')
  assert.equal(await served('x.b.test'), 'b.test')
  // No --cert: the first file by name is the default.
  assert.equal(await served('unknown.test'), 'a.test')
  assert.equal(await served(), 'a.test')
  const refused = node.logs.find((l) => String(l.msg).includes('certificate file refused'))
  assert.ok(refused !== undefined, 'the broken file was not reported')
  assert.match(String(refused.error), /broken\.pem/)
  assert.equal(refused.err, undefined, 'no stack trace for a routine refusal (it repeats at every SIGHUP)')
  const ready = node.logs.find((l) => l.msg === 'tlsfleet node ready') as { certificates: Array<{ file: string }> }
  assert.deepEqual(ready.certificates.map((c) => path.basename(c.file)), ['a.pem', 'b.pem'])
})

test('SIGHUP re-reads the directory: new files serve, removed ones stop, broken ones are named again', async () => {
  fs.renameSync(makeCertificate(path.join(dir, 'scratch'), 'c', ['c.test']), path.join(certDir, 'c.pem'))
  fs.rmSync(path.join(certDir, 'b.pem'))
  const reloads = node.logs.filter((l) => l.msg === 'certificates reloaded' && l.name === 'primary').length
  const refusals = node.logs.filter((l) => String(l.msg).includes('certificate file refused')).length
  node.process.kill('SIGHUP')
  await node.waitForLog(() => node.logs.filter((l) => l.msg === 'certificates reloaded' && l.name === 'worker').length > reloads, 10_000)
  assert.equal(await served('c.test'), 'c.test')
  assert.equal(await served('b.test'), 'a.test', 'a removed file still serves')
  assert.equal(node.logs.filter((l) => String(l.msg).includes('certificate file refused')).length, refusals + 1)
  // The reload line says it went ahead without a file, at warn level (40).
  const reloaded = node.logs.filter((l) => l.msg === 'certificates reloaded' && l.name === 'primary').at(-1)
  assert.equal(reloaded?.refusedFiles, 1, JSON.stringify(reloaded))
  assert.equal(reloaded?.level, 40)
})

test('a directory with no usable certificate refuses the start, naming it', async () => {
  const empty = path.join(dir, 'only-broken')
  fs.mkdirSync(empty)
  fs.writeFileSync(path.join(empty, 'x.pem'), 'garbage')
  const [p, admin] = await freePorts(2) as [number, number]
  const result = await runNodeToExit(['--workers', '1', '--listen', `127.0.0.1:${p}`, '--admin-listen', `127.0.0.1:${admin}`, '--cert-dir', empty])
  assert.equal(result.code, 2, result.stderr)
  assert.match(result.stderr, /--cert-dir ".*only-broken": no usable certificate in it \(TLSFLEET_ERR_CERTIFICATE\)/)
  const missing = await runNodeToExit(['--workers', '1', '--listen', `127.0.0.1:${p}`, '--admin-listen', `127.0.0.1:${admin}`, '--cert-dir', path.join(dir, 'nope')])
  assert.equal(missing.code, 2, missing.stderr)
  assert.match(missing.stderr, /--cert-dir ".*": cannot be read/)
})

test('a key too small for the TLS policy (RSA-1024): skipped in --cert-dir, refused as --cert at start and on SIGHUP; no worker ever fails on it', async () => {
  const scratch = path.join(dir, 'scratch')
  const weakDir = path.join(dir, 'weak-dir')
  fs.mkdirSync(weakDir)
  fs.renameSync(makeCertificate(scratch, 'ok', ['ok.test']), path.join(weakDir, 'a-ok.pem'))
  fs.renameSync(makeCertificate(scratch, 'weak', ['weak.test'], 'rsa-1024'), path.join(weakDir, 'b-weak.pem'))
  const [p, admin, p2, admin2] = await freePorts(4) as [number, number, number, number]
  // Security level 2 said outright: OpenSSL 3.5 (Node 24) refuses RSA-1024 at its default, 3.0 (Node 22) does not.
  const seclevel2 = ['--ciphers', 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:@SECLEVEL=2']
  const fromDir = await startNode(['--workers', '1', '--listen', `127.0.0.1:${p}`, '--cert-dir', weakDir, ...seclevel2], { adminPort: admin })
  try {
    const refused = fromDir.logs.find((l) => String(l.msg).includes('certificate file refused'))
    assert.match(String(refused?.error), /^--cert-dir file ".*b-weak\.pem": OpenSSL refuses it under the TLS policy/)
    assert.equal((await sClient({ port: p, servername: 'ok.test', tls: '1.3' })).protocol, 'TLSv1.3')
  } finally {
    await fromDir.stop()
  }
  const weak = makeCertificate(scratch, 'weak2', ['weak.test'], 'rsa-1024')
  const atStart = await runNodeToExit(['--workers', '1', '--listen', `127.0.0.1:${p}`, '--admin-listen', `127.0.0.1:${admin}`, '--cert', weak, ...seclevel2])
  assert.equal(atStart.code, 2, atStart.stderr)
  assert.match(atStart.stderr, /--cert ".*weak2\.pem": OpenSSL refuses it under the TLS policy \(--tls-profile intermediate\).*\(TLSFLEET_ERR_CERTIFICATE\)/)
  // A --cert file replaced by a weak one: the reload is refused, the workers keep serving.
  const live = path.join(dir, 'live.pem')
  fs.copyFileSync(makeCertificate(scratch, 'live', ['live.test']), live)
  const reloaded = await startNode(['--workers', '1', '--listen', `127.0.0.1:${p2}`, '--cert', live, ...seclevel2], { adminPort: admin2 })
  try {
    fs.copyFileSync(weak, live)
    reloaded.process.kill('SIGHUP')
    await reloaded.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('certificate reload refused'), 10_000)
    assert.equal((await sClient({ port: p2, servername: 'live.test', tls: '1.3' })).protocol, 'TLSv1.3')
    assert.ok(!reloaded.logs.some((l) => l.msg === 'worker died; replacing it'), reloaded.diagnosis())
  } finally {
    await reloaded.stop()
  }
})
