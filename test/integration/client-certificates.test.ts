import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { decodeTlsTlvs, PP2_CLIENT_CERT_CONN, PP2_CLIENT_CERT_SESS, PP2_CLIENT_SSL } from '../../src/proxy/proxy-tlv.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { capturedClientHello } from '../helpers/client-hello.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { TestCa, type Issued } from '../helpers/pki.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend, type BackendConnection } from '../helpers/recording-backend.js'
import { byteRecords, rawExchange } from '../helpers/tls-client.js'
import { UdpRecorder } from '../helpers/udp-recorder.js'

// Real openssl s_client clients against nodes asking for client certificates (optional on one,
// required on the other), offering ALPN, refusing unknown SNI names, and telling the backend
// what was negotiated in PROXY v2 TLVs (decoded here as a backend would).
const dir = tempDir()
const ca = new TestCa(path.join(dir, 'ca'))
const server = ca.issue('server', { names: ['app.test'], usage: 'server' })
const client = ca.issue('client', { names: ['client-1'], usage: 'client' })
const revoked = ca.issue('revoked', { names: ['client-2'], usage: 'client' })
ca.revoke(revoked)
const crl = ca.crl()
const stranger = makeCertificate(dir, 'stranger', ['stranger'])
let optional: RunningNode
let required: RunningNode
let optionalPort: number
let requiredPort: number
let backend: Awaited<ReturnType<typeof startRecordingBackend>>

before(async () => {
  backend = await startRecordingBackend()
  const [p1, a1, p2, a2] = await freePorts(4) as [number, number, number, number]
  optionalPort = p1
  requiredPort = p2
  const common = ['--workers', '1', '--backend', `127.0.0.1:${backend.port}`, '--cert', server.bundle, '--client-ca', ca.cert,
    '--proxy-protocol-out', 'v2', '--proxy-tlv', 'alpn,authority,ssl']
  ;[optional, required] = await Promise.all([
    startNode([...common, '--listen', `127.0.0.1:${p1}`, '--client-verify', 'optional', '--crl', crl, '--alpn', 'h2,http/1.1', '--sni-nomatch', 'abort'], { adminPort: a1 }),
    startNode([...common, '--listen', `127.0.0.1:${p2}`, '--client-verify', 'require'], { adminPort: a2 })
  ])
})

after(async () => {
  await Promise.all([optional?.stop(), required?.stop()])
  await backend?.close()
})

function certArgs (issued: Issued | string): string[] {
  return typeof issued === 'string' ? ['-cert', issued, '-key', issued] : ['-cert', issued.cert, '-key', issued.key]
}

/** The backend connection the next handshake opens (PROXY header parsed), or none within `ms`. */
async function nextBackendConnection (run: () => Promise<unknown>, ms = 5000): Promise<BackendConnection | undefined> {
  const before = backend.connections.length
  await run()
  try {
    await eventually(() => backend.connections.slice(before).some((c) => c.proxy !== undefined), ms, 'a backend connection')
  } catch { return undefined }
  return backend.connections.slice(before).find((c) => c.proxy !== undefined)
}

test('ALPN, SNI, version, cipher and the client certificate\'s CN reach the backend in PROXY v2 TLVs', async () => {
  let output = ''
  const conn = await nextBackendConnection(async () => { output = (await sClient({ port: optionalPort, servername: 'app.test', tls: '1.3', extra: ['-alpn', 'h2', ...certArgs(client)] })).output })
  assert.match(output, /ALPN protocol: h2/)
  assert.ok(conn?.proxy !== undefined, 'the backend got no PROXY header')
  const facts = decodeTlsTlvs(conn.proxy.tlvs)
  assert.equal(facts.alpn, 'h2')
  assert.equal(facts.authority, 'app.test')
  assert.equal(facts.ssl?.version, 'TLSv1.3')
  assert.match(facts.ssl?.cipher ?? '', /^TLS_AES_(128_GCM_SHA256|256_GCM_SHA384)$|^TLS_CHACHA20_POLY1305_SHA256$/)
  assert.equal(facts.ssl?.commonName, 'client-1')
  assert.equal(facts.ssl?.verify, 0)
  assert.equal(facts.ssl?.client, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS)

  const tls12 = await nextBackendConnection(async () => await sClient({ port: optionalPort, servername: 'app.test', tls: '1.2', extra: ['-alpn', 'http/1.1', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256', ...certArgs(client)] }))
  const facts12 = decodeTlsTlvs(tls12?.proxy?.tlvs ?? [])
  assert.deepEqual([facts12.alpn, facts12.ssl?.version, facts12.ssl?.cipher, facts12.ssl?.commonName], ['http/1.1', 'TLSv1.2', 'ECDHE-RSA-AES128-GCM-SHA256', 'client-1'])
})

test('a session resumed with a client certificate still names it, flagged as from the session', async () => {
  const sess = path.join(dir, 'client.sess')
  await sClient({ port: optionalPort, servername: 'app.test', tls: '1.2', sessOut: sess, extra: certArgs(client) })
  let resumed = false
  const conn = await nextBackendConnection(async () => { resumed = (await sClient({ port: optionalPort, servername: 'app.test', tls: '1.2', sessIn: sess, extra: certArgs(client) })).reused })
  assert.equal(resumed, true, 'the session did not resume')
  const facts = decodeTlsTlvs(conn?.proxy?.tlvs ?? [])
  assert.equal(facts.ssl?.commonName, 'client-1')
  assert.equal(facts.ssl?.verify, 0)
  assert.equal(facts.ssl?.client, PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS)
  assert.equal(facts.authority, 'app.test', 'the SNI name is passed on for a resumed TLS 1.2 session too')
  // The same with a TLS 1.2 ticket (no client certificate): Node forgets the name then as well.
  const ticket = path.join(dir, 'ticket.sess')
  await sClient({ port: optionalPort, servername: 'app.test', tls: '1.2', sessOut: ticket })
  let byTicket = false
  const again = await nextBackendConnection(async () => { byTicket = (await sClient({ port: optionalPort, servername: 'app.test', tls: '1.2', sessIn: ticket })).reused })
  assert.equal(byTicket, true, 'the ticket did not resume')
  assert.equal(decodeTlsTlvs(again?.proxy?.tlvs ?? []).authority, 'app.test')
})

test('optional: a client without a certificate is served, and the backend hears it had none', async () => {
  const conn = await nextBackendConnection(async () => await sClient({ port: optionalPort, servername: 'app.test', tls: '1.3' }))
  const facts = decodeTlsTlvs(conn?.proxy?.tlvs ?? [])
  assert.equal(facts.ssl?.client, PP2_CLIENT_SSL)
  assert.notEqual(facts.ssl?.verify, 0)
  assert.equal(facts.ssl?.commonName, undefined)
  assert.equal(facts.alpn, undefined, 'no ALPN was offered, none negotiated')
})

test('a revoked or untrusted certificate is refused and counted with its reason; the backend never hears of it', async () => {
  const failures = await optional.metric('tlsfleet_handshake_failures_total', { reason: 'client_certificate' })
  for (const [cert, tls] of [[revoked, '1.3'], [revoked, '1.2'], [stranger, '1.3']] as const) {
    const conn = await nextBackendConnection(async () => await sClient({ port: optionalPort, servername: 'app.test', tls, extra: certArgs(cert) }), 1500)
    assert.equal(conn, undefined, `a connection with ${typeof cert === 'string' ? 'an untrusted' : 'a revoked'} certificate reached the backend`)
  }
  await eventually(async () => await optional.metric('tlsfleet_handshake_failures_total', { reason: 'client_certificate' }) === failures + 3, 5000, 'three counted refusals')
  assert.equal(await optional.metric('tlsfleet_client_certificate_rejections_total', { reason: 'CERT_REVOKED' }), 2)
  const text = (await (await fetch(`${optional.adminUrl}/metrics`)).text()).split('\n').filter((l) => l.startsWith('tlsfleet_client_certificate_rejections_total')).join('\n')
  // OpenSSL's own first complaint about a stranger's chain; with --crl it is the CRL it lacks.
  assert.match(text, /tlsfleet_client_certificate_rejections_total\{reason="(UNABLE_TO_GET_CRL|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE)"\} 1/)
})

test('--crl with a CRL for each of two CAs: both are read, so clients of the second CA are served, and its revoked ones refused', async () => {
  const second = new TestCa(path.join(dir, 'ca2'), 'tlsfleet second test CA')
  const theirs = second.issue('theirs', { names: ['client-9'], usage: 'client' })
  const theirsRevoked = second.issue('theirs-revoked', { names: ['client-10'], usage: 'client' })
  second.revoke(theirsRevoked)
  const cas = path.join(dir, 'two-cas.pem')
  fs.writeFileSync(cas, fs.readFileSync(ca.cert, 'utf8') + fs.readFileSync(second.cert, 'utf8'))
  const crls = path.join(dir, 'two-crls.pem')
  fs.writeFileSync(crls, fs.readFileSync(ca.crl('crl-again.pem'), 'utf8') + fs.readFileSync(second.crl(), 'utf8'))
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--backend', `127.0.0.1:${backend.port}`, '--cert', server.bundle, '--listen', `127.0.0.1:${port}`,
    '--client-verify', 'require', '--client-ca', cas, '--crl', crls, '--proxy-protocol-out', 'v2'], { adminPort: admin })
  try {
    for (const [who, served] of [[client, true], [theirs, true], [revoked, false], [theirsRevoked, false]] as const) {
      const conn = await nextBackendConnection(async () => await sClient({ port, servername: 'app.test', tls: '1.3', extra: certArgs(who) }), 1500)
      assert.equal(conn !== undefined, served, `${who.cert}: ${served ? 'refused' : 'served'}; ${(await (await fetch(`${node.adminUrl}/metrics`)).text()).split('\n').filter((l) => l.startsWith('tlsfleet_client_certificate_rejections_total')).join(', ')}`)
    }
    await eventually(async () => await node.metric('tlsfleet_client_certificate_rejections_total', { reason: 'CERT_REVOKED' }) === 2, 5000, 'both revoked ones refused as revoked')
    assert.equal(await node.metric('tlsfleet_client_certificate_rejections_total', { reason: 'UNABLE_TO_GET_CRL' }), 0)
  } finally {
    await node.stop()
  }
})

test('a certificate revoked after its session was made: after SIGHUP with the new CRL its sessions (ID, TLS 1.2 ticket, TLS 1.3) are refused at resumption and the ID is dropped; others still resume', async () => {
  const later = ca.issue('later', { names: ['client-later'], usage: 'client' })
  const crlFile = path.join(dir, 'crl-live.pem')
  fs.copyFileSync(ca.crl('crl-before.pem'), crlFile)
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--backend', `127.0.0.1:${backend.port}`, '--cert', server.bundle, '--listen', `127.0.0.1:${port}`,
    '--client-verify', 'require', '--client-ca', ca.cert, '--crl', crlFile, '--proxy-protocol-out', 'v2'], { adminPort: admin })
  try {
    const kinds = [
      { name: 'session ID', tls: '1.2' as const, extra: ['-no_ticket'] },
      { name: 'TLS 1.2 ticket', tls: '1.2' as const, extra: [] },
      { name: 'TLS 1.3', tls: '1.3' as const, extra: [] }
    ]
    const sessions: Array<{ name: string; file: string; tls: '1.2' | '1.3'; extra: string[]; who: Issued }> = []
    for (const who of [later, client]) {
      for (const kind of kinds) {
        const file = path.join(dir, `live-${path.basename(who.cert)}-${kind.name.replace(/\W/g, '')}.sess`)
        await sClient({ port, servername: 'app.test', tls: kind.tls, sessOut: file, extra: [...kind.extra, ...certArgs(who)] })
        sessions.push({ ...kind, file, who })
      }
    }
    const resume = async (s: typeof sessions[0]): Promise<{ reused: boolean; served: boolean }> => {
      let reused = false
      const conn = await nextBackendConnection(async () => { reused = (await sClient({ port, servername: 'app.test', tls: s.tls, sessIn: s.file, extra: [...s.extra, ...certArgs(s.who)] })).reused }, 1500)
      return { reused, served: conn !== undefined }
    }
    for (const s of sessions) assert.deepEqual(await resume(s), { reused: true, served: true }, `${s.name} of ${s.who.cert} before the revocation`)

    ca.revoke(later)
    fs.copyFileSync(ca.crl('crl-after.pem'), crlFile)
    const reloads = node.logs.filter((l) => l.msg === 'certificates reloaded' && l.name === 'worker').length
    const invalidated = await node.metric('tlsfleet_sessions_invalidated_total')
    node.process.kill('SIGHUP')
    await node.waitForLog(() => node.logs.filter((l) => l.msg === 'certificates reloaded' && l.name === 'worker').length > reloads, 10_000)

    for (const s of sessions) {
      const revokedNow = s.who === later
      const result = await resume(s)
      assert.equal(result.served, !revokedNow, `${s.name} of ${s.who.cert}: ${revokedNow ? 'served after its certificate was revoked' : 'refused'}`)
      if (!revokedNow) assert.equal(result.reused, true, `${s.name} of ${s.who.cert} no longer resumes`)
    }
    await eventually(async () => await node.metric('tlsfleet_client_certificate_rejections_total', { reason: 'CERT_REVOKED' }) === 3, 5000, 'three resumptions refused as revoked')
    // The session-ID one is dropped from the cache (farm-wide, as a Del): it is not offered again.
    await eventually(async () => await node.metric('tlsfleet_sessions_invalidated_total') === invalidated + 1, 5000, 'the revoked session ID dropped')
    const byId = sessions.find((s) => s.who === later && s.name === 'session ID') as typeof sessions[0]
    const again = await sClient({ port, servername: 'app.test', tls: '1.2', sessIn: byId.file, extra: ['-no_ticket', ...certArgs(later)] })
    assert.equal(again.reused, false, 'the dropped session resumed again')
  } finally {
    await node.stop()
  }
})

test('a --client-ca CA without a CRL in --crl is warned about by name at the SIGHUP that adds it, and its clients are refused as the warning says', async () => {
  const third = new TestCa(path.join(dir, 'ca3'), 'tlsfleet third test CA')
  const theirs = third.issue('third-client', { names: ['client-3'], usage: 'client' })
  const caFile = path.join(dir, 'ca-live.pem')
  fs.copyFileSync(ca.cert, caFile)
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--backend', `127.0.0.1:${backend.port}`, '--cert', server.bundle, '--listen', `127.0.0.1:${port}`,
    '--client-verify', 'require', '--client-ca', caFile, '--crl', crl, '--proxy-protocol-out', 'v2'], { adminPort: admin })
  const warned = (): Array<Record<string, unknown>> => node.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('--crl has no CRL of this --client-ca certificate'))
  try {
    assert.equal(warned().length, 0, 'warned while every CA has its CRL')
    fs.writeFileSync(caFile, fs.readFileSync(ca.cert, 'utf8') + fs.readFileSync(third.cert, 'utf8'))
    node.process.kill('SIGHUP')
    const warning = await node.waitForLog((l) => warned().includes(l), 10_000)
    assert.equal(warning.ca, 'CN=tlsfleet third test CA')
    assert.equal(warning.level, 40)
    await node.waitForLog((l) => l.msg === 'certificates reloaded' && l.name === 'worker', 10_000)
    assert.equal(await nextBackendConnection(async () => await sClient({ port, servername: 'app.test', tls: '1.3', extra: certArgs(theirs) }), 1500), undefined, 'a client of the CA without a CRL was served')
    await eventually(async () => await node.metric('tlsfleet_client_certificate_rejections_total', { reason: 'UNABLE_TO_GET_CRL' }) === 1, 5000, 'refused for the CRL it lacks')
    assert.notEqual(await nextBackendConnection(async () => await sClient({ port, servername: 'app.test', tls: '1.3', extra: certArgs(client) })), undefined, 'a client of the CA with its CRL')
  } finally {
    await node.stop()
  }
})

test('a session too big for one sync packet (a large client certificate in it) is counted as too_big and warned about once; a usual one is sent', async () => {
  const large = ca.issue('large-client', { names: ['client-large'], usage: 'client', clientAltNames: Array.from({ length: 40 }, (_, i) => `device-${i}.clients.example.internal`) })
  const peer = await UdpRecorder.bind()
  const secret = writeFarmSecret(dir)
  const [port, admin, sync] = await freePorts(3) as [number, number, number]
  const node = await startNode(['--workers', '1', '--backend', `127.0.0.1:${backend.port}`, '--cert', server.bundle, '--listen', `127.0.0.1:${port}`,
    '--client-verify', 'require', '--client-ca', ca.cert, '--sync-listen', `127.0.0.1:${sync}`, '--sync-peer', peer.address, '--sync-secret-file', secret], { adminPort: admin })
  const newsSent = async (): Promise<number> => await node.metric('tlsfleet_sync_packets_total', { direction: 'out', result: 'sent' })
  try {
    const before = await newsSent()
    const receivedBefore = peer.received.length // the warm join's snapshot request
    await sClient({ port, servername: 'app.test', tls: '1.2', extra: ['-no_ticket', ...certArgs(client)] })
    await eventually(async () => await newsSent() > before, 5000, 'the usual session sent')
    await sClient({ port, servername: 'app.test', tls: '1.2', extra: ['-no_ticket', ...certArgs(large)] })
    await eventually(async () => await node.metric('tlsfleet_sync_packets_total', { direction: 'out', result: 'too_big' }) === 1, 5000, 'the large session counted as too_big')
    await sClient({ port, servername: 'app.test', tls: '1.2', extra: ['-no_ticket', ...certArgs(large)] })
    await eventually(async () => await node.metric('tlsfleet_sync_packets_total', { direction: 'out', result: 'too_big' }) === 2, 5000, 'the second one too')
    const warned = node.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('sync: a session too big for one sync packet'))
    assert.equal(warned.length, 1, 'warned once')
    assert.ok((warned[0]?.bytes as number) > (warned[0]?.limit as number))
    await eventually(() => peer.received.length - receivedBefore === 1, 5000, 'the usual session at the peer')
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.equal(peer.received.length - receivedBefore, 1, 'only the usual session reached the peer')
    assert.equal(await newsSent() - before, 1)
  } finally {
    await node.stop()
    peer.close()
  }
})

test('a CN with a comma reaches the backend as written (not escaped as in Node\'s subject text)', async () => {
  const doe = ca.issue('doe', { names: ['Doe, John'], usage: 'client' })
  const conn = await nextBackendConnection(async () => await sClient({ port: requiredPort, servername: 'app.test', tls: '1.3', extra: certArgs(doe) }))
  assert.equal(decodeTlsTlvs(conn?.proxy?.tlvs ?? []).ssl?.commonName, 'Doe, John')
})

test('require: no certificate, no connection; a valid one is served', async () => {
  for (const tls of ['1.2', '1.3'] as const) {
    const conn = await nextBackendConnection(async () => await sClient({ port: requiredPort, servername: 'app.test', tls }), 1500)
    assert.equal(conn, undefined, `TLS ${tls} without a certificate reached the backend`)
  }
  await eventually(async () => await required.metric('tlsfleet_client_certificate_rejections_total', { reason: 'missing' }) === 2, 5000, 'two refusals for a missing certificate')
  const conn = await nextBackendConnection(async () => await sClient({ port: requiredPort, servername: 'app.test', tls: '1.3', extra: certArgs(client) }))
  assert.equal(decodeTlsTlvs(conn?.proxy?.tlvs ?? []).ssl?.commonName, 'client-1')
})

test('--sni-nomatch abort: an unknown name gets an unrecognized_name alert; no name gets the default certificate', async () => {
  const unknown = await sClient({ port: optionalPort, servername: 'other.test', tls: '1.3' })
  assert.match(unknown.output, /unrecognized name|alert number 112/)
  assert.equal(unknown.protocol, undefined)
  await eventually(async () => await optional.metric('tlsfleet_handshake_failures_total', { reason: 'sni_nomatch' }) === 1, 5000, 'the refusal counted')
  const none = await sClient({ port: optionalPort, tls: '1.3' })
  assert.equal(none.protocol, 'TLSv1.3')
  assert.match(none.subject ?? '', /CN ?= ?app\.test/)
  // A name that is no DNS name at all is a name no certificate covers, not "no name".
  const implausible = await sClient({ port: optionalPort, servername: 'other..test', tls: '1.3' })
  assert.match(implausible.output, /unrecognized name|alert number 112/)
  assert.equal(implausible.protocol, undefined)
  // A ClientHello in more records than the worker reads ahead: OpenSSL reads the name, refused all the same.
  const hello = await capturedClientHello('other.test', { maxVersion: 'TLSv1.2' })
  const fragmented = byteRecords(hello)
  const answer = await rawExchange(optionalPort, fragmented)
  assert.ok(!answer.includes(Buffer.from('app.test')), `the fragmented ClientHello got the certificate (${answer.length} bytes back)`)
  assert.ok(answer.length <= 7, `answered ${answer.length} bytes (a ServerHello?)`)
  await eventually(async () => await optional.metric('tlsfleet_handshake_failures_total', { reason: 'sni_nomatch' }) === 3, 5000, 'both refusals counted')
})

