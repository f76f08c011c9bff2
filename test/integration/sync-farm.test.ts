import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { resumesEventually, sClient, startFarm } from '../helpers/farm.js'
import { startNode } from '../helpers/node-process.js'
import { nodeClient } from '../helpers/tls-client.js'

// Three nodes on distinct loopback addresses, each sending to the other two (unicast). Node 3
// seals with AES-256-GCM, the others with the default ChaCha20-Poly1305: a farm changing its
// cipher node by node (every node opens both).
const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3']
let farm: Awaited<ReturnType<typeof startFarm>>

before(async () => {
  farm = await startFarm(HOSTS, {
    sync: (i, ports) => [
      '--sync-listen', `${HOSTS[i] as string}:${ports[i] as number}`,
      ...HOSTS.flatMap((host, j) => j === i ? [] : ['--sync-peer', `${host}:${ports[j] as number}`]),
      ...(i === 2 ? ['--sync-cipher', 'aes-256-gcm'] : [])
    ]
  })
})

after(async () => { await farm?.stop() })

test('a TLS 1.2 session ID created on node 1 resumes on nodes 2 and 3 (openssl s_client)', async () => {
  const [n1, n2, n3] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0], typeof farm.nodes[0]]
  const sess = path.join(farm.dir, 'tls12.pem')
  const first = await sClient({ host: n1.host, port: n1.port, tls: '1.2', sessOut: sess, extra: ['-no_ticket'] })
  assert.equal(first.reused, false)
  for (const other of [n2, n3]) {
    const again = await resumesEventually(async () => await sClient({ host: other.host, port: other.port, tls: '1.2', sessIn: sess, extra: ['-no_ticket'] }))
    assert.equal(again.reused, true, `not resumed on ${other.host}:\n${again.output}`)
  }
  // It came through the farm sync, into L2, not through a ticket.
  assert.ok(await n2.node.metric('tlsfleet_session_cache_lookups_total', { level: 'l2', result: 'hit' }) >= 1)
  assert.ok(await n2.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' }) >= 1)
  assert.ok(await n1.node.metric('tlsfleet_sync_packets_total', { direction: 'out', result: 'sent' }) >= 2)
})

test('--sync-cipher: node 3 seals with AES-256-GCM and nodes 1 and 2 with ChaCha20-Poly1305 (libsodium); each opens the other\'s packets', async () => {
  const [n1, n2, n3] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0], typeof farm.nodes[0]]
  const sealedWith = (n: typeof n1): unknown => n.node.logs.find((l) => l.msg === 'farm sync listening')?.sealedWith
  assert.equal(sealedWith(n1), 'chacha20-poly1305 (libsodium)')
  assert.equal(sealedWith(n3), 'aes-256-gcm (node:crypto)')
  const sess = path.join(farm.dir, 'tls12-from-node3.pem')
  const first = await sClient({ host: n3.host, port: n3.port, tls: '1.2', sessOut: sess, extra: ['-no_ticket'] })
  assert.equal(first.reused, false)
  for (const other of [n1, n2]) {
    const again = await resumesEventually(async () => await sClient({ host: other.host, port: other.port, tls: '1.2', sessIn: sess, extra: ['-no_ticket'] }))
    assert.equal(again.reused, true, `node 3's session (AES-256-GCM) not resumed on ${other.host}:\n${again.output}`)
  }
  // Nothing refused anywhere: neither cipher's packets fail at the other's nodes.
  for (const n of [n1, n2, n3]) {
    assert.equal(await n.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'bad_tag' }), 0)
    assert.equal(await n.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'bad_version' }), 0)
  }
})

test('a TLS 1.3 ticket issued by node 1 resumes on nodes 2 and 3 (farm-wide ticket keys)', async () => {
  const [n1, n2, n3] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0], typeof farm.nodes[0]]
  const sess = path.join(farm.dir, 'tls13.pem')
  const first = await sClient({ host: n1.host, port: n1.port, tls: '1.3', sessOut: sess })
  assert.equal(first.protocol, 'TLSv1.3', first.output)
  for (const other of [n2, n3]) {
    const again = await sClient({ host: other.host, port: other.port, tls: '1.3', sessIn: sess })
    assert.equal(again.reused, true, `TLS 1.3 ticket not resumed on ${other.host}:\n${again.output}`)
  }
})

test('Node\'s tls client resumes across the farm too, TLS 1.2 (session ID) and TLS 1.3 (ticket)', async () => {
  const [n1, n2, n3] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0], typeof farm.nodes[0]]
  for (const [maxVersion, noTicket] of [['TLSv1.2', true], ['TLSv1.3', false]] as const) {
    const first = await nodeClient(n1.host, n1.port, { maxVersion, noTicket })
    assert.equal(first.reused, false)
    for (const other of [n2, n3]) {
      let reused = false
      const deadline = Date.now() + 3000
      while (!reused && Date.now() < deadline) {
        reused = (await nodeClient(other.host, other.port, { maxVersion, noTicket, session: first.session })).reused
      }
      assert.equal(reused, true, `${maxVersion} session from ${n1.host} not resumed on ${other.host}`)
    }
  }
})

test('warm join: a node restarted after a session was created resumes it', async () => {
  const n3 = farm.nodes[2] as typeof farm.nodes[0]
  const n1 = farm.nodes[0] as typeof farm.nodes[0]
  await n3.node.stop()
  const sess = path.join(farm.dir, 'warm.pem')
  const first = await sClient({ host: n1.host, port: n1.port, tls: '1.2', sessOut: sess, extra: ['-no_ticket'] })
  assert.equal(first.reused, false)
  // Restart node 3 with the same flags: it asks its peers for a snapshot before serving.
  n3.node = await startNode(n3.args, { adminPort: n3.admin })
  const warm = n3.node.logs.find((l) => l.msg === 'warm join done')
  assert.ok(warm !== undefined && Number(warm.sessions) >= 1, `warm join brought no sessions: ${JSON.stringify(warm)}`)
  // Retried because a busy machine can push the first L2 lookup past its 25 ms deadline right
  // after start; the session can only have arrived by the warm join (node 3 was down).
  const again = await resumesEventually(async () => await sClient({ host: n3.host, port: n3.port, tls: '1.2', sessIn: sess, extra: ['-no_ticket'] }))
  assert.equal(again.reused, true, `session created while node 3 was down did not resume on it:\n${again.output}`)
})

test('warm join: a peer with nothing to give that answers first does not leave the restarted node cold', async () => {
  const [n1, n2, n3] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0], typeof farm.nodes[0]]
  await n2.node.stop()
  await n3.node.stop()
  for (let i = 0; i < 3; i++) assert.equal((await nodeClient(n1.host, n1.port, { maxVersion: 'TLSv1.2', noTicket: true })).reused, false)
  // Node 2 comes back empty (no warm join of its own): the peer that answers fastest, with nothing.
  n2.node = await startNode([...n2.args, '--warm-join-timeout', '0'], { adminPort: n2.admin })
  const n1pid = n1.node.process.pid as number
  // Node 1, the peer with the sessions, is held while node 3 asks, and let go right after node 2 answered.
  process.kill(n1pid, 'SIGSTOP')
  try {
    const restarted = startNode(n3.args, { adminPort: n3.admin })
    // Let go as soon as node 3's admin API answers (its warm join starts right after): well
    // within the 250 ms a join waits for more peers once node 2 has answered.
    const deadline = Date.now() + 15_000
    while (!await fetch(`http://127.0.0.1:${n3.admin}/health`).then(() => true, () => false)) {
      if (Date.now() > deadline) throw new Error('node 3\'s admin API never answered')
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    process.kill(n1pid, 'SIGCONT')
    n3.node = await restarted
  } finally {
    process.kill(n1pid, 'SIGCONT')
  }
  const warm = n3.node.logs.find((l) => l.msg === 'warm join done')
  assert.equal(warm?.peers, 2, JSON.stringify(warm))
  assert.ok(Number(warm?.sessions) >= 3, `the warm join ended with the empty peer's answer: ${JSON.stringify(warm)}`)
  assert.equal(await n3.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'unsolicited' }), 0)
})
