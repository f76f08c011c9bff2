import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { RedisServer } from '../../src/lab/redis-server.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { TestCa } from '../helpers/pki.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { sClient } from '../helpers/openssl.js'
import { eventually, runNodeToExit, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'
import { redisCli, startSentinelSet } from '../helpers/redis-topologies.js'

// A store beyond one LAN speaks TLS: a real redis-server on a TLS port only, with a private CA,
// asking clients for a certificate (tls-auth-clients yes, Redis's default with TLS).
const dir = tempDir()
let redis: RedisServer
let secret: string
// A private CA, the server's certificate for 127.0.0.1, a client's (its bundle: key, certificate, CA).
const ca = new TestCa(path.join(dir, 'ca'), 'store test CA')
const server = ca.issue('server', { names: ['store.test'], addresses: ['127.0.0.1'], usage: 'server', keyType: 'ecdsa' })
const client = ca.issue('client', { names: ['node-1'], usage: 'client', keyType: 'ecdsa' })

before(async () => {
  secret = writeFarmSecret(dir)
  redis = await RedisServer.start('127.0.0.1', { tls: { certFile: server.cert, keyFile: server.key, caFile: ca.cert, authClients: true } })
})

after(async () => { await redis?.stop() })

// One certificate for every node: a session resumes only under the certificate that made it.
let nodeCert: string | undefined

async function nodeWithStore (name: string, storeArgs: string[], url = redis.url): Promise<{ node: RunningNode; port: number }> {
  const [port, admin] = await freePorts(2) as [number, number]
  nodeCert ??= makeCertificate(dir, 'node', ['localhost'])
  const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--cert', nodeCert, '--state-dir', path.join(dir, name),
    '--sync-secret-file', secret, '--session-store', url, '--session-store-timeout', '10', ...storeArgs], { adminPort: admin })
  return { node, port }
}

test('rediss:// with --session-store-ca and --session-store-cert: connected, and a session made on one node resumes on another through the store', async () => {
  const trusted = ['--session-store-ca', ca.cert, '--session-store-cert', client.bundle]
  const a = await nodeWithStore('a', trusted)
  const b = await nodeWithStore('b', trusted)
  try {
    for (const n of [a, b]) assert.ok(n.node.logs.some((l) => l.msg === 'session store connected'), n.node.diagnosis())
    const sess = path.join(dir, 'tls-store.sess')
    await sClient({ port: a.port, servername: 'localhost', tls: '1.2', sessOut: sess, extra: ['-no_ticket'] })
    let reused = false
    await eventually(async () => (reused = (await sClient({ port: b.port, servername: 'localhost', tls: '1.2', sessIn: sess, extra: ['-no_ticket'] })).reused), 10_000, 'resumed on b through the store')
    assert.equal(reused, true)
    assert.ok(await b.node.metric('tlsfleet_session_store_lookups_total', { result: 'hit' }) >= 1)
  } finally {
    await a.node.stop()
    await b.node.stop()
  }
})

test('rediss+sentinel://: Sentinels and data nodes on TLS only, asking for client certificates; a session resumes on another node through the store, before and after a failover', async () => {
  // The Sentinels are asked over TLS (ioredis's sentinelTLS) and the master they name is
  // reached over TLS too (enableTLSForSentinelMode: without it ioredis speaks plain TCP to the
  // master whatever --session-store-ca says), each with the node's client certificate.
  const setDir = path.join(dir, 'sentinel-tls')
  fs.mkdirSync(setDir)
  const cliTls = { caFile: ca.cert, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key }
  const set = await startSentinelSet(setDir, 'farm', { tls: cliTls })
  const trusted = ['--session-store-ca', ca.cert, '--session-store-cert', client.bundle]
  const nodes: Array<{ node: RunningNode; port: number }> = []
  try {
    assert.match(set.url, /^rediss\+sentinel:\/\//)
    // No --sync-listen: the store is the only way a session crosses from a to b.
    const a = await nodeWithStore('sentinel-a', trusted, set.url)
    nodes.push(a)
    const b = await nodeWithStore('sentinel-b', trusted, set.url)
    nodes.push(b)
    for (const n of [a, b]) assert.ok(n.node.logs.some((l) => l.msg === 'session store connected'), n.node.diagnosis())
    const crossed = async (file: string): Promise<{ reused: boolean; key: string }> => {
      const made = await sClient({ port: a.port, servername: 'localhost', tls: '1.2', sessOut: file, extra: ['-no_ticket'] })
      const id = /Session-ID: ([0-9A-F]{64})/.exec(made.output)?.[1]
      assert.ok(id !== undefined, made.output)
      let reused = false
      const deadline = Date.now() + 5000
      while (!reused && Date.now() < deadline) {
        reused = (await sClient({ port: b.port, servername: 'localhost', tls: '1.2', sessIn: file, extra: ['-no_ticket'] })).reused
        if (!reused) await new Promise((resolve) => setTimeout(resolve, 100))
      }
      return { reused, key: `tlsfleet:session:${id.toLowerCase()}` }
    }
    const hits = async (): Promise<number> => await b.node.metric('tlsfleet_session_store_lookups_total', { result: 'hit' })

    const first = await crossed(path.join(setDir, 'before.sess'))
    assert.equal(first.reused, true, 'not resumed on b through the store (over TLS to the Sentinel and the master)')
    assert.equal(redisCli(set.primary.host, set.primary.port, ['EXISTS', first.key], cliTls), '1', 'written to the master')
    const hitsBefore = await hits()
    assert.ok(hitsBefore >= 1, `b's store hits: ${hitsBefore}`)

    const replicaAddress = `${set.replica.host}:${set.replica.port}`
    redisCli(set.primary.host, set.sentinelPort, ['SENTINEL', 'FAILOVER', 'farm'], cliTls)
    await eventually(() => set.masterAddress() === replicaAddress, 20_000, 'the replica promoted')
    // The nodes move to the promoted replica (over TLS): within seconds a new session is
    // written there and read back from there by the other node.
    let after = { reused: false, key: '' }
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline) {
      after = await crossed(path.join(setDir, 'after.sess'))
      if (after.reused && redisCli(set.replica.host, set.replica.port, ['EXISTS', after.key], cliTls) === '1') break
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    assert.equal(after.reused, true, 'no session resumed through the store after the failover')
    assert.equal(redisCli(set.replica.host, set.replica.port, ['ROLE'], cliTls).split('\n')[0], 'master')
    assert.equal(redisCli(set.replica.host, set.replica.port, ['EXISTS', after.key], cliTls), '1', 'written to the promoted replica')
    assert.ok(await hits() > hitsBefore, 'b found the session after the failover in the store')
  } finally {
    for (const n of nodes) await n.node.stop()
    await set.stop()
  }
})

test('rediss:// without the private CA, or without the client certificate the store asks for: the node serves, and the log says why the store is not reachable', async () => {
  for (const [name, args, said] of [
    ['no-ca', ['--session-store-cert', client.bundle], (l: Record<string, unknown>) => /self-signed certificate|unable to (get local issuer|verify)/i.test(String(l.cause))],
    // Node says only ECONNRESET: the log says what to give.
    ['no-cert', ['--session-store-ca', ca.cert], (l: Record<string, unknown>) => /give --session-store-cert/.test(String(l.hint))]
  ] as const) {
    const n = await nodeWithStore(name, [...args])
    try {
      const line = await n.node.waitForLog((l) => l.msg === 'session store not reachable at start: serving without it, reconnecting in the background', 10_000)
      assert.ok(said(line), `${name}: ${JSON.stringify(line)}`)
      assert.equal((await fetch(`${n.node.adminUrl}/health`)).status, 200, `${name}: the node serves without its store`)
      assert.ok(!n.node.logs.some((l) => l.msg === 'session store connected'), `${name}: connected`)
    } finally {
      await n.node.stop()
    }
  }
})

test('--session-store-ca or --session-store-cert without TLS, or a file that is not what it should be, is refused at start naming the option', async () => {
  const [port, admin] = await freePorts(2) as [number, number]
  const base = ['--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${admin}`, '--state-dir', path.join(dir, 'refused'), '--sync-secret-file', secret]
  const plain = await runNodeToExit([...base, '--session-store', 'redis://127.0.0.1:6399/0', '--session-store-ca', ca.cert])
  assert.equal(plain.code, 2, plain.stderr)
  assert.match(plain.stderr, /--session-store-ca needs a --session-store with TLS \(rediss:\/\//)
  const keyless = await runNodeToExit([...base, '--session-store', redis.url, '--session-store-cert', client.cert])
  assert.equal(keyless.code, 2, keyless.stderr)
  assert.match(keyless.stderr, /--session-store-cert ".*client\.crt": expected one private key and the client certificate \(then its chain\), found 0 key\(s\) and 1 certificate\(s\)/)
  const notCa = await runNodeToExit([...base, '--session-store', redis.url, '--session-store-ca', ca.key])
  assert.match(notCa.stderr, /--session-store-ca ".*ca\.key": no PEM certificate in it/)
})
