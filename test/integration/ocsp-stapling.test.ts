import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { certificateKey } from '../../src/ocsp/staple-store.js'
import { tempDir } from '../helpers/certs.js'
import { eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { stopProcess, TestCa, type Issued } from '../helpers/pki.js'
import { freePorts } from '../helpers/ports.js'

// OCSP stapling against real `openssl ocsp` responders on loopback: a good certificate (its
// responder signing with a delegated OCSP certificate, or with the CA's own key), a revoked
// one, a responder that is down, one that never answers, one whose signature is not the
// issuer's; responses valid for one minute, so the node must refresh them on its own.
const dir = tempDir()
const ca = new TestCa(path.join(dir, 'ca'))
const rogue = new TestCa(path.join(dir, 'rogue'), 'rogue CA')
// Real certificates come from an intermediate CA: the staple is checked against it, never a root.
const intermediate = new TestCa(path.join(dir, 'intermediate'), 'tlsfleet test intermediate CA', ca)
const ocspDir = path.join(dir, 'ocsp')
let certs: Record<'good' | 'direct' | 'revoked' | 'down' | 'hanging' | 'forged' | 'pairRsa' | 'pairEcdsa' | 'chained' | 'chainedDelegated', Issued>
let responder: ChildProcess | undefined
let directResponder: ChildProcess | undefined
let forgedResponder: ChildProcess | undefined
let intermediateResponders: ChildProcess[] = []
let hanging: net.Server
let node: RunningNode
let port: number
let firstResponse: Buffer

before(async () => {
  const [responderPort, directPort, down, hangingPort, forged, tlsPort, admin, chainedPort, chainedDelegatedPort] = await freePorts(9) as [number, number, number, number, number, number, number, number, number]
  port = tlsPort
  const url = (p: number): string => `http://127.0.0.1:${p}/`
  certs = {
    good: ca.issue('good', { names: ['good.test'], usage: 'server', ocspUrl: url(responderPort) }),
    direct: ca.issue('direct', { names: ['direct.test'], usage: 'server', ocspUrl: url(directPort), keyType: 'ecdsa' }),
    revoked: ca.issue('revoked', { names: ['revoked.test'], usage: 'server', ocspUrl: url(responderPort) }),
    down: ca.issue('down', { names: ['down.test'], usage: 'server', ocspUrl: url(down) }),
    hanging: ca.issue('hanging', { names: ['hanging.test'], usage: 'server', ocspUrl: url(hangingPort) }),
    forged: ca.issue('forged', { names: ['forged.test'], usage: 'server', ocspUrl: url(forged) }),
    // One name, an RSA and an ECDSA certificate: the staple must be the served one's.
    pairRsa: ca.issue('pair-rsa', { names: ['pair.test'], usage: 'server', ocspUrl: url(responderPort) }),
    pairEcdsa: ca.issue('pair-ecdsa', { names: ['pair.test'], usage: 'server', ocspUrl: url(responderPort), keyType: 'ecdsa' }),
    chained: intermediate.issue('chained', { names: ['chained.test'], usage: 'server', ocspUrl: url(chainedPort) }),
    chainedDelegated: intermediate.issue('chained-delegated', { names: ['chained-delegated.test'], usage: 'server', ocspUrl: url(chainedDelegatedPort), keyType: 'ecdsa' })
  }
  // The intermediate signs its own responses, or has a delegated responder sign them.
  intermediateResponders = [
    await intermediate.startResponder(chainedPort, { minutes: 1 }),
    await intermediate.startResponder(chainedDelegatedPort, { minutes: 1, signer: intermediate.issue('intermediate-ocsp-signer', { names: ['intermediate ocsp signer'], usage: 'ocsp' }) })
  ]
  ca.revoke(certs.revoked)
  // A delegated responder certificate (OCSP signing), as large CAs run them.
  const signer = ca.issue('ocsp-signer', { names: ['ocsp signer'], usage: 'ocsp' })
  responder = await ca.startResponder(responderPort, { minutes: 1, signer })
  directResponder = await ca.startResponder(directPort, { minutes: 1 })
  // Answers about our CA's certificates, signed by another CA's key.
  forgedResponder = await startForgedResponder(forged)
  hanging = net.createServer(() => { /* accept and never answer */ })
  await new Promise<void>((resolve) => hanging.listen(hangingPort, '127.0.0.1', resolve))
  node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--ocsp-dir', ocspDir,
    ...Object.values(certs).flatMap((c) => ['--cert', c.bundle])], { adminPort: admin })
})

after(async () => {
  await node?.stop()
  await Promise.all([stopProcess(responder), stopProcess(directResponder), stopProcess(forgedResponder), ...intermediateResponders.map(stopProcess)])
  hanging?.close()
})

async function startForgedResponder (p: number): Promise<ChildProcess> {
  const child = spawn('openssl', ['ocsp', '-index', path.join(ca.dir, 'index.txt'), '-port', String(p), '-rsigner', rogue.cert, '-rkey', rogue.key, '-CA', ca.cert, '-nmin', '1', '-ignore_err'], { stdio: ['ignore', 'pipe', 'pipe'] })
  process.once('exit', () => child.kill('SIGKILL'))
  await new Promise<void>((resolve) => {
    const onData = (d: Buffer): void => { if (d.toString().includes('waiting for OCSP client connections')) resolve() }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
  })
  return child
}

async function status (servername: string): Promise<{ stapled: string | undefined; thisUpdate: string | undefined; output: string; ms: number }> {
  const started = Date.now()
  const result = await sClient({ port, servername, tls: '1.3', extra: ['-status'] })
  return {
    stapled: /Cert Status: (\w+)/.exec(result.output)?.[1],
    thisUpdate: /This Update: (.+)/.exec(result.output)?.[1],
    output: result.output,
    ms: Date.now() - started
  }
}

test('a good certificate gets its verified response stapled, and kept on disk', async () => {
  await eventually(async () => (await status('good.test')).stapled === 'good', 15_000, 'a stapled good response (delegated signer)')
  await eventually(async () => (await status('direct.test')).stapled === 'good', 15_000, 'a stapled good response (signed by the CA)')
  const kept = (): string[] => fs.readdirSync(ocspDir).filter((f) => f.endsWith('.der'))
  await eventually(() => kept().length >= 7, 15_000, 'seven responses kept')
  const files = kept()
  assert.equal(files.length, 7, `kept responses (good, direct, revoked, the pair and the two from the intermediate): ${files.join(', ')}`)
  firstResponse = fs.readFileSync(path.join(ocspDir, keptName(certs.good)))
  const age = await node.metric('tlsfleet_ocsp_staple_age_seconds', { certificate: certs.good.bundle })
  assert.ok(age >= 0 && age < 60, `staple age ${age}`)
})

test('certificates issued by an intermediate CA get their staple, signed by the intermediate or by its delegated responder', async () => {
  await eventually(async () => (await status('chained.test')).stapled === 'good', 15_000, 'a stapled response signed by the intermediate')
  await eventually(async () => (await status('chained-delegated.test')).stapled === 'good', 15_000, 'a stapled response signed by the intermediate\'s delegated responder')
})

test('a name with an RSA and an ECDSA certificate: each client gets the staple of the certificate it is served', async () => {
  const served = async (extra: string[], status = true): Promise<{ serial: string; keyType: string | undefined; stapledSerial: string | undefined }> => {
    const result = await sClient({ port, servername: 'pair.test', extra: [...(status ? ['-status'] : []), ...extra] })
    // The OCSP response printed before it may hold the responder's certificate.
    const pem = /Server certificate\r?\n(-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----)/.exec(result.output)?.[1]
    assert.ok(pem !== undefined, result.output)
    const cert = new crypto.X509Certificate(pem)
    return {
      serial: cert.serialNumber.toUpperCase(),
      keyType: cert.publicKey.asymmetricKeyType,
      // The response's certificate ID (not its responder's certificate, printed after it).
      stapledSerial: /Certificate ID:[\s\S]*?Serial Number: ([0-9A-F]+)/i.exec(result.output)?.[1]?.toUpperCase()
    }
  }
  await eventually(async () => (await served([])).stapledSerial !== undefined && (await served(['-sigalgs', 'RSA+SHA256:RSA-PSS+SHA256'])).stapledSerial !== undefined, 15_000, 'both certificates of the pair stapled')
  const cases = [
    ['a client that verifies ECDSA', ['-tls1_3'], 'ec'],
    ['a client with RSA signatures only', ['-tls1_2', '-sigalgs', 'RSA+SHA256'], 'rsa'],
    ['a TLS 1.2 client offering no ECDSA suite', ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'], 'rsa'],
    ['a TLS 1.3 client whose ECDSA schemes are not for P-256', ['-tls1_3', '-sigalgs', 'ecdsa_secp384r1_sha384:rsa_pss_rsae_sha256'], 'rsa']
  ] as const
  for (const [what, extra, keyType] of cases) {
    const got = await served([...extra])
    assert.equal(got.keyType, keyType, what)
    assert.equal(got.stapledSerial, got.serial, `${what}: the staple is for the certificate served`)
  }
  // Not asking for a staple: served all the same (Node's SNI callback installs one certificate of a context).
  const plain = await served(['-tls1_2', '-sigalgs', 'RSA+SHA256'], false)
  assert.equal(plain.keyType, 'rsa')
  assert.equal(plain.stapledSerial, undefined)
})

test('a revoked certificate: the responder\'s signed "revoked" is stapled and the operator told', async () => {
  await eventually(async () => (await status('revoked.test')).stapled === 'revoked', 15_000, 'a stapled revoked response')
  assert.ok(node.logs.some((l) => l.level === 50 && String(l.msg).includes('REVOKED') && l.certificate === certs.revoked.bundle))
})

test('a responder that is down, never answers, or signs with the wrong key delays no handshake and gets no staple', async () => {
  for (const name of ['down.test', 'hanging.test', 'forged.test']) {
    const result = await status(name)
    assert.match(result.output, /OCSP response: no response sent/, name)
    assert.ok(result.ms < 3000, `${name}: the handshake took ${result.ms} ms`)
  }
  await eventually(async () => await node.metric('tlsfleet_ocsp_refresh_failures_total', { reason: 'unreachable' }) >= 2, 20_000, 'down and hanging responders counted')
  assert.ok(await node.metric('tlsfleet_ocsp_refresh_failures_total', { reason: 'unverified' }) >= 1, 'the forged response was not refused as unverified')
  assert.equal(await node.metric('tlsfleet_ocsp_staple_age_seconds', { certificate: certs.forged.bundle }), 0)
})

test('a response valid for a minute is fetched again before it expires', async () => {
  const first = (await status('good.test')).thisUpdate
  assert.ok(first !== undefined)
  await eventually(async () => {
    const now = (await status('good.test')).thisUpdate
    return now !== undefined && now !== first
  }, 50_000, 'a newer stapled response')
  assert.ok(node.logs.filter((l) => l.msg === 'OCSP response fetched' && l.certificate === certs.good.bundle).length >= 2)
})

test('a restarted node staples the kept response at once, with the responder down', async () => {
  await stopProcess(responder)
  const [p, admin] = await freePorts(2) as [number, number]
  const restarted = await startNode(['--workers', '1', '--listen', `127.0.0.1:${p}`, '--ocsp-dir', ocspDir, '--cert', certs.good.bundle], { adminPort: admin })
  try {
    const result = await sClient({ port: p, servername: 'good.test', tls: '1.3', extra: ['-status'] })
    assert.match(result.output, /Cert Status: good/)
    assert.ok(restarted.logs.some((l) => l.msg === 'OCSP response loaded from --ocsp-dir'))
  } finally {
    await restarted.stop()
  }
})

test('an expired response on disk is never stapled', async () => {
  // The first response fetched for good.test was valid for one minute from its thisUpdate.
  const expiredDir = path.join(dir, 'ocsp-expired')
  fs.mkdirSync(expiredDir)
  fs.writeFileSync(path.join(expiredDir, keptName(certs.good)), firstResponse)
  const probe = path.join(dir, 'probe.der')
  fs.writeFileSync(probe, firstResponse)
  const text = execFileSync('openssl', ['ocsp', '-respin', probe, '-noverify', '-resp_text'], { encoding: 'utf8' })
  const nextUpdate = Date.parse(/Next Update: (.+)/.exec(text)?.[1] ?? '')
  assert.ok(Number.isFinite(nextUpdate), text)
  const wait = nextUpdate + 1000 - Date.now()
  assert.ok(wait < 70_000, `the first response is valid for another ${wait} ms`)
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  const [p, admin] = await freePorts(2) as [number, number]
  const restarted = await startNode(['--workers', '1', '--listen', `127.0.0.1:${p}`, '--ocsp-dir', expiredDir, '--cert', certs.good.bundle], { adminPort: admin })
  try {
    const result = await sClient({ port: p, servername: 'good.test', tls: '1.3', extra: ['-status'] })
    assert.match(result.output, /OCSP response: no response sent/)
    assert.ok(restarted.logs.some((l) => String(l.msg).includes('no longer usable')))
  } finally {
    await restarted.stop()
  }
})

/** The file a response for `issued` is kept in: named by the leaf's SHA-256. */
function keptName (issued: Issued): string {
  return `${certificateKey(new crypto.X509Certificate(fs.readFileSync(issued.cert)).raw)}.der`
}
