import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, test } from 'node:test'
import type { PeersBody } from '../../src/admin/schemas.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { pollUntil } from '../helpers/haproxy.js'
import { startHaproxyNode, type HaproxyNode } from '../helpers/haproxy-node.js'
import { startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'

/**
 * A mixed farm: one node where tlsfleet's workers terminate TLS (with --session-id-context
 * haproxy, as the mixed farm requires), one where a local HAProxy does and tlsfleet companions
 * it; one farm secret, default rotation. Tickets cross both ways, TLS 1.3 and TLS 1.2, with
 * real openssl s_client. A second tlsfleet node left at the default context shows why the
 * requirement exists: with it, nothing crosses.
 */

let dir: string
let backend: Awaited<ReturnType<typeof startRecordingBackend>>
let haproxyNode: HaproxyNode
let tlsfleetNode: { node: RunningNode; port: number }
let defaultContextNode: { node: RunningNode; port: number }
let tlsfleetSync: string

async function startTlsfleetNode (cert: string, secret: string, extra: string[]): Promise<{ node: RunningNode; port: number }> {
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--cert', cert, '--backend', `127.0.0.1:${backend.port}`, '--sync-secret-file', secret, ...extra], { adminPort: admin })
  return { node, port }
}

before(async () => {
  dir = tempDir()
  const cert = makeCertificate(dir, 'farm', ['localhost'])
  const secret = writeFarmSecret(dir)
  backend = await startRecordingBackend()
  const [syncT, syncH] = await freePorts(2) as [number, number]
  tlsfleetSync = `127.0.0.1:${syncT}`
  haproxyNode = await startHaproxyNode({
    dir, name: 'haproxy-node', cert, secret, rotationSeconds: 3600, backendPort: backend.port,
    nodeArgs: ['--sync-listen', `127.0.0.1:${syncH}`, '--sync-peer', `127.0.0.1:${syncT}`, '--warm-join-timeout', '0.5']
  })
  tlsfleetNode = await startTlsfleetNode(cert, secret, ['--node-id', 'tlsfleet-node', '--session-id-context', 'haproxy', '--sync-listen', `127.0.0.1:${syncT}`, '--sync-peer', `127.0.0.1:${syncH}`, '--warm-join-timeout', '0.5'])
  defaultContextNode = await startTlsfleetNode(cert, secret, ['--node-id', 'default-context'])
})

after(async () => {
  await haproxyNode?.stop()
  await tlsfleetNode?.node.stop()
  await defaultContextNode?.node.stop()
  await backend?.close()
})

/** Issue a ticket on `from`, offer it to `to`: whether `to` resumed it. */
async function crosses (version: '1.2' | '1.3', from: number, to: number, label: string): Promise<boolean> {
  const sess = path.join(dir, `${label}-${version}.sess`)
  const issued = await sClient({ port: from, servername: 'localhost', tls: version, sessOut: sess })
  assert.equal(issued.protocol, `TLSv${version}`, issued.output)
  assert.equal(issued.reused, false)
  // The ticket is good where it was made (the client side is not at fault when it does not cross).
  assert.equal((await sClient({ port: from, servername: 'localhost', tls: version, sessIn: sess })).reused, true, `${label}: no resumption on the issuing node`)
  const offered = await sClient({ port: to, servername: 'localhost', tls: version, sessIn: sess })
  assert.equal(offered.protocol, `TLSv${version}`, offered.output)
  return offered.reused
}

for (const version of ['1.3', '1.2'] as const) {
  test(`TLS ${version}: a ticket from the tlsfleet node resumes on the HAProxy node, and one from the HAProxy node on the tlsfleet node`, async () => {
    assert.equal(await crosses(version, tlsfleetNode.port, haproxyNode.port, 'tlsfleet-to-haproxy'), true, `TLS ${version} ticket from tlsfleet refused by HAProxy`)
    assert.equal(await crosses(version, haproxyNode.port, tlsfleetNode.port, 'haproxy-to-tlsfleet'), true, `TLS ${version} ticket from HAProxy refused by tlsfleet`)
  })
}

test('a tlsfleet node left at the default session-ID context shares no ticket with HAProxy, either way', async () => {
  for (const version of ['1.3', '1.2'] as const) {
    assert.equal(await crosses(version, defaultContextNode.port, haproxyNode.port, 'default-to-haproxy'), false)
    assert.equal(await crosses(version, haproxyNode.port, defaultContextNode.port, 'haproxy-to-default'), false)
  }
})

test('the HAProxy-terminated node takes part in the farm sync: it hears its tlsfleet peer', async () => {
  // A TLS 1.2 session-ID handshake on the tlsfleet node makes it send a New to its peer.
  await sClient({ port: tlsfleetNode.port, servername: 'localhost', tls: '1.2', extra: ['-no_ticket'] })
  const peers = await pollUntil('the HAProxy node to hear its peer', async () => {
    const body = await (await fetch(`${haproxyNode.node.adminUrl}/v1/peers`)).json() as PeersBody
    return body.peers.some((p) => p.packetsIn > 0) ? body : undefined
  }, 5000)
  assert.equal(peers.peers.find((p) => p.packetsIn > 0)?.address, tlsfleetSync)
})
