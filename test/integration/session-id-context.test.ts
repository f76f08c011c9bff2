import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { resumesEventually, startFarm, type FarmNode } from '../helpers/farm.js'
import { eventually } from '../helpers/node-process.js'
import { sClient, type SClientResult } from '../helpers/openssl.js'

/**
 * Virtual-host confusion (Delignat-Lavaud & Bhargavan, 2015): a session made with one
 * certificate must not resume under a name another certificate serves, on this node or on
 * another node of the farm, whether it comes back by session ID, TLS 1.2 ticket or TLS 1.3
 * ticket. Two nodes share a farm secret (the same ticket keys) and sync their session caches;
 * each serves localhost (the default certificate), a.test, b.test and c.test (RSA and
 * ECDSA), node 2 with its files in another
 * order: the session-ID context comes from the certificates, not from how they were listed.
 */
let farm: Awaited<ReturnType<typeof startFarm>>
let n1: FarmNode
let n2: FarmNode
let dir: string

before(async () => {
  dir = tempDir()
  const a = makeCertificate(dir, 'a', ['a.test'])
  const b = makeCertificate(dir, 'b', ['b.test'])
  const cRsa = makeCertificate(dir, 'c-rsa', ['c.test'])
  const cEcdsa = makeCertificate(dir, 'c-ecdsa', ['c.test'], 'ecdsa')
  const certs = [[a, b, cRsa, cEcdsa], [b, cEcdsa, a, cRsa]]
  farm = await startFarm(['127.0.0.1', '127.0.0.2'], {
    dir,
    sync: (i, ports) => [
      '--sync-listen', `127.0.0.${i + 1}:${ports[i] as number}`, '--sync-peer', `127.0.0.${2 - i}:${ports[1 - i] as number}`,
      ...(certs[i] as string[]).flatMap((file) => ['--cert', file])
    ]
  })
  ;[n1, n2] = farm.nodes as [FarmNode, FarmNode]
})

after(async () => { await farm?.stop() })

interface Path { name: string; tls: '1.2' | '1.3'; extra: string[] }
const PATHS: Path[] = [
  { name: 'TLS 1.2 session ID', tls: '1.2', extra: ['-no_ticket'] },
  { name: 'TLS 1.2 ticket', tls: '1.2', extra: [] },
  { name: 'TLS 1.3 ticket', tls: '1.3', extra: [] }
]

const connect = async (node: FarmNode, servername: string, p: Path, session: { sessIn?: string; sessOut?: string }, extra: string[] = []): Promise<SClientResult> =>
  await sClient({ host: node.host, port: node.port, servername, tls: p.tls, ...session, extra: [...p.extra, ...extra] })

for (const [i, p] of PATHS.entries()) {
  test(`${p.name}: a.test's session resumes for a.test on both nodes, never for b.test (whose certificate the client never saw)`, async () => {
    const sess = path.join(dir, `a-${i}.pem`)
    const first = await connect(n1, 'a.test', p, { sessOut: sess })
    assert.equal(first.reused, false, first.output)
    assert.match(first.subject ?? '', /CN\s*=\s*a\.test/, first.output)
    const here = await connect(n1, 'a.test', p, { sessIn: sess })
    assert.equal(here.reused, true, `same name, same node:\n${here.output}`)
    // The session ID crosses to node 2 by the farm sync (a moment); tickets need nothing.
    const there = await resumesEventually(async () => await connect(n2, 'a.test', p, { sessIn: sess }))
    assert.equal(there.reused, true, `same name, other node:\n${there.output}`)

    const otherBefore = await n2.node.metric('tlsfleet_sessions_other_context_total')
    for (const node of [n1, n2]) {
      const other = await connect(node, 'b.test', p, { sessIn: sess })
      assert.equal(other.reused, false, `b.test resumed a.test's session on ${node.host}:\n${other.output}`)
      assert.match(other.subject ?? '', /CN\s*=\s*b\.test/, `a full handshake with b.test's certificate:\n${other.output}`)
    }
    if (p.name === 'TLS 1.2 session ID') {
      // OpenSSL refused a farm session node 2 supplied: another certificate's, sound for its
      // own name, so counted and kept (not dropped from the farm).
      await eventually(async () => await n2.node.metric('tlsfleet_sessions_other_context_total') > otherBefore, 5000, 'the refusal counted as another context')
      assert.equal(await n2.node.metric('tlsfleet_sessions_invalidated_total'), 0)
      assert.ok(n2.node.logs.some((l) => String(l.msg).includes('another certificate')), 'named as another certificate\'s session, not as nodes set up differently')
    }
    const still = await connect(n2, 'a.test', p, { sessIn: sess })
    assert.equal(still.reused, true, `a.test's session still resumes after the refusals:\n${still.output}`)
  })
}

/** Only RSA or only ECDSA for this client, by what it can verify. */
const RSA_ONLY: Record<Path['tls'], string[]> = { '1.2': ['-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'], '1.3': ['-sigalgs', 'rsa_pss_rsae_sha256'] }
const ECDSA_ONLY: Record<Path['tls'], string[]> = { '1.2': ['-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'], '1.3': ['-sigalgs', 'ecdsa_secp256r1_sha256'] }

for (const [i, p] of PATHS.entries()) {
  test(`${p.name}: c.test's RSA and ECDSA certificates are one choice: a session resumes whichever key served it, on both nodes`, async () => {
    for (const [kind, only] of [['rsa', RSA_ONLY], ['ecdsa', ECDSA_ONLY]] as const) {
      const sess = path.join(dir, `c-${kind}-${i}.pem`)
      const first = await connect(n1, 'c.test', p, { sessOut: sess }, only[p.tls])
      assert.equal(first.reused, false, first.output)
      assert.match(first.output, kind === 'rsa' ? /Server public key is 2048 bit/ : /Server public key is 256 bit/, `served by the ${kind} certificate:\n${first.output}`)
      // Back with the client's usual lists, where OpenSSL would pick either certificate.
      const here = await connect(n1, 'c.test', p, { sessIn: sess })
      assert.equal(here.reused, true, `${kind}, same node:\n${here.output}`)
      const there = await resumesEventually(async () => await connect(n2, 'c.test', p, { sessIn: sess }))
      assert.equal(there.reused, true, `${kind}, other node (its files in another order):\n${there.output}`)
      const other = await connect(n2, 'a.test', p, { sessIn: sess })
      assert.equal(other.reused, false, `a.test resumed c.test's session:\n${other.output}`)
    }
  })
}

/**
 * A ClientHello the worker cannot read ahead (over 16 KiB: a long ALPN list; OpenSSL takes up
 * to 128 KiB) gets the default certificate's context, and OpenSSL resumes under it before the
 * SNI would pick the name's certificate (a resumed handshake never asks the SNI callback, and
 * in TLS 1.2 reports the session's name, not the one sent): nothing may resume there.
 */
test('a ClientHello too large to read ahead resumes nothing: the default certificate\'s session never goes on under another certificate\'s name', async () => {
  // 100 protocols of 200 bytes: a 20 KiB ClientHello.
  const longAlpn = ['-alpn', Array.from({ length: 100 }, (_, k) => `p${k}`.padEnd(200, 'x')).join(',')]
  // The default certificate: the farm's own (startFarm gives it first), for localhost.
  for (const p of PATHS) {
    const sess = path.join(dir, `large-hello-${p.name.replaceAll(' ', '-')}.pem`)
    const first = await connect(n1, 'localhost', p, { sessOut: sess })
    assert.equal(first.reused, false, first.output)
    assert.equal((await connect(n1, 'localhost', p, { sessIn: sess })).reused, true, 'resumes with a ClientHello read ahead')
    const other = await connect(n1, 'b.test', p, { sessIn: sess }, longAlpn)
    assert.equal(other.reused, false, `${p.name}: b.test resumed localhost's session:\n${other.output}`)
    assert.match(other.subject ?? '', /CN\s*=\s*b\.test/, `${p.name}: b.test's certificate, chosen by the SNI callback:\n${other.output}`)
  }
})
