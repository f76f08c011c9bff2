import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import fs from 'node:fs'
import { decodeStud, studHmacKeyFromPrivateKeyPem } from '../../src/sync/wire-stud.js'
import path from 'node:path'
import { test } from 'node:test'
import { tempDir } from '../helpers/certs.js'
import { restartForWarmJoin, resumesEventually, sClient, startFarm, writeFarmSecret } from '../helpers/farm.js'
import { eventually, runNodeToExit } from '../helpers/node-process.js'
import { freePort, freePorts } from '../helpers/ports.js'

async function sharesSessions (farm: Awaited<ReturnType<typeof startFarm>>, label: string): Promise<void> {
  const [n1, ...others] = farm.nodes as [typeof farm.nodes[0], ...typeof farm.nodes]
  const sess = path.join(farm.dir, `${label}.pem`)
  const first = await sClient({ host: n1.host, port: n1.port, tls: '1.2', sessOut: sess, extra: ['-no_ticket'] })
  assert.equal(first.reused, false, first.output)
  for (const other of others) {
    const again = await resumesEventually(async () => await sClient({ host: other.host, port: other.port, tls: '1.2', sessIn: sess, extra: ['-no_ticket'] }))
    assert.equal(again.reused, true, `${label}: not resumed on ${other.host}:\n${again.output}`)
  }
}

test('multicast on loopback: three nodes join one group and share sessions; each skips its own packets; a restarted node warm-joins', async () => {
  const group = '239.255.42.99'
  const port = await freePort()
  const farm = await startFarm(['127.0.0.1', '127.0.0.2', '127.0.0.3'], {
    sync: () => ['--sync-listen', `${group}:${port}`, '--sync-interface', '127.0.0.1,1']
  })
  try {
    await sharesSessions(farm, 'multicast')
    const n1 = farm.nodes[0] as typeof farm.nodes[0]
    assert.ok(await n1.node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'own' }) >= 1, 'node 1 did not see (and skip) its own multicast packet')
    assert.ok(!farm.nodes.some((n) => n.node.logs.some((l) => String(l.msg).includes('two nodes share one --node-id'))), 'its own multicast echo taken for another node')
    assert.ok(n1.node.logs.some((l) => l.msg === 'farm sync listening' && /^[0-9a-f]{16}$/.test(String(l.farmKeyFingerprint))), 'the farm key fingerprint is in the start log')
    assert.equal(await n1.node.metric('tlsfleet_session_cache_entries') >= 1, true)
    // Peers unknown in advance: the request goes to the group, each node answers from its own
    // unicast snapshot socket (the three share the group's port on this host).
    const sessions = await restartForWarmJoin(farm.nodes[2] as typeof farm.nodes[0])
    assert.ok(sessions >= 1, `the warm join over multicast brought ${sessions} sessions`)
  } finally {
    await farm.stop()
  }
})

test('IPv6: two nodes sync over ::1, and a restarted one warm-joins', async () => {
  const farm = await startFarm(['::1', '::1'], {
    sync: (i, ports) => ['--sync-listen', `[::1]:${ports[i] as number}`, '--sync-peer', `[::1]:${ports[1 - i] as number}`]
  })
  try {
    await sharesSessions(farm, 'ipv6')
    const sessions = await restartForWarmJoin(farm.nodes[1] as typeof farm.nodes[0])
    assert.ok(sessions >= 1, `the warm join over IPv6 brought ${sessions} sessions`)
  } finally {
    await farm.stop()
  }
})

test('stud format between tlsfleet nodes: sessions shared, datagrams never dated in the future, a warning that it is not encrypted', async () => {
  // A third, passive peer: a UDP socket of the test, seeing what a hitch peer would receive.
  const listener = dgram.createSocket('udp4')
  const datagrams: Array<{ packet: Buffer; at: number }> = []
  listener.on('message', (packet) => datagrams.push({ packet, at: Date.now() }))
  await new Promise<void>((resolve) => listener.bind(0, '127.0.0.1', resolve))
  const hitchLike = (listener.address()).port
  const farm = await startFarm(['127.0.0.1', '127.0.0.2'], {
    sync: (i, ports) => ['--sync-format', 'stud', '--session-id-context', 'hitch', '--session-tickets', 'off',
      '--sync-listen', `127.0.0.${i + 1}:${ports[i] as number}`, '--sync-peer', `127.0.0.${2 - i}:${ports[1 - i] as number}`,
      '--sync-peer', `127.0.0.1:${hitchLike}`]
  })
  try {
    await sharesSessions(farm, 'stud')
    const warning = farm.nodes[0]?.node.logs.find((l) => typeof l.msg === 'string' && l.msg.includes('cross the network in clear'))
    assert.ok(warning !== undefined, 'no startup warning about the unencrypted stud format')
    assert.ok(!farm.nodes.some((n) => n.node.logs.some((l) => String(l.msg).startsWith('--sync-format stud without --session-id-context'))), 'warned though --session-id-context hitch is given')
    assert.ok(datagrams.length >= 1, 'the passive peer got no datagram')
    const hmacKey = studHmacKeyFromPrivateKeyPem(fs.readFileSync(farm.cert, 'utf8'))
    for (const { packet, at } of datagrams) {
      const decoded = decodeStud(packet, { hmacKey, now: () => at, sessionTimeoutSeconds: 300 })
      assert.ok(decoded.ok, `a datagram did not verify: ${JSON.stringify(decoded)}`)
      // hitch asserts now >= time: a date even one second ahead would abort a hitch peer.
      assert.ok(decoded.message.createdAt <= Math.floor(at / 1000) - 2, `datagram dated ${decoded.message.createdAt}, received at ${at}`)
    }
  } finally {
    listener.close()
    await farm.stop()
  }
})

test('stud without --session-id-context: a warning that hitch\'s sessions do not resume here (ours are per certificate)', async () => {
  const farm = await startFarm(['127.0.0.1'], {
    sync: (_i, ports) => ['--sync-format', 'stud', '--session-tickets', 'off', '--sync-listen', `127.0.0.1:${ports[0] as number}`]
  })
  try {
    await (farm.nodes[0] as typeof farm.nodes[0]).node.waitForLog((l) => String(l.msg).startsWith('--sync-format stud without --session-id-context: sessions made by hitch'), 5000)
  } finally {
    await farm.stop()
  }
})

test('nodes with different --session-id-context values do not resume each other\'s sessions, and do not drop them from the farm either', async () => {
  const farm = await startFarm(['127.0.0.1', '127.0.0.2'], {
    sync: (i, ports) => ['--session-id-context', `farm-${i}`,
      '--sync-listen', `127.0.0.${i + 1}:${ports[i] as number}`, '--sync-peer', `127.0.0.${2 - i}:${ports[1 - i] as number}`]
  })
  try {
    const [n1, n2] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0]]
    const sess = path.join(farm.dir, 'ctx.pem')
    await sClient({ host: n1.host, port: n1.port, tls: '1.2', sessOut: sess, extra: ['-no_ticket'] })
    // The session did reach node 2's cache ...
    await eventually(async () => await n2.node.metric('tlsfleet_session_cache_entries') >= 1, 5000, 'session synced')
    // ... but OpenSSL refuses it under another context. It is sound where it was made: counted
    // and named, not dropped (a Del would end its resumption on node 1 too).
    for (let i = 0; i < 2; i++) {
      const again = await sClient({ host: n2.host, port: n2.port, tls: '1.2', sessIn: sess, extra: ['-no_ticket'] })
      assert.equal(again.reused, false, again.output)
    }
    await eventually(async () => await n2.node.metric('tlsfleet_sessions_other_context_total') === 2, 5000, 'refusals for the other context counted')
    assert.equal(await n2.node.metric('tlsfleet_sessions_invalidated_total'), 0)
    assert.equal(n2.node.logs.filter((l) => String(l.msg).includes('made under another session-ID context')).length, 1, 'named once')
    const onMaker = await sClient({ host: n1.host, port: n1.port, tls: '1.2', sessIn: sess, extra: ['-no_ticket'] })
    assert.equal(onMaker.reused, true, `dropped on the node that made it:\n${onMaker.output}`)
  } finally {
    await farm.stop()
  }
})

test('a node listening on [::] sends to IPv4 peers (as IPv4-mapped addresses); a peer given by host name is looked up, not per datagram', async () => {
  // Node 1 on [::] with node 2's IPv4 address; node 2 on 127.0.0.2 with node 1 as "localhost"
  // (127.0.0.1, and ::1, which its IPv4 socket cannot reach and leaves out).
  const farm = await startFarm(['127.0.0.1', '127.0.0.2'], {
    sync: (i, ports) => i === 0
      ? ['--sync-listen', `[::]:${ports[0] as number}`, '--sync-peer', `127.0.0.2:${ports[1] as number}`]
      : ['--sync-listen', `127.0.0.2:${ports[1] as number}`, '--sync-peer', `localhost:${ports[0] as number}`]
  })
  try {
    const [n1, n2] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0]]
    for (const [from, to, name] of [[n1, n2, 'from-dual.pem'], [n2, n1, 'from-v4.pem']] as const) {
      const sess = path.join(farm.dir, name)
      assert.equal((await sClient({ host: from.host, port: from.port, tls: '1.2', sessOut: sess, extra: ['-no_ticket'] })).reused, false)
      const again = await resumesEventually(async () => await sClient({ host: to.host, port: to.port, tls: '1.2', sessIn: sess, extra: ['-no_ticket'] }))
      assert.equal(again.reused, true, `a session made on ${from.host} did not reach ${to.host}:\n${again.output}`)
    }
    assert.equal(await n1.node.metric('tlsfleet_sync_packets_total', { direction: 'out', result: 'send_error' }), 0)
    assert.equal(await n2.node.metric('tlsfleet_sync_packets_total', { direction: 'out', result: 'send_error' }), 0)
    const peers = ((await (await fetch(`${n2.node.adminUrl}/v1/peers`)).json()) as { peers: Array<{ address: string; configured: boolean }> }).peers
    assert.deepEqual(peers.filter((p) => p.configured).map((p) => p.address), [`127.0.0.1:${n1.sync}`], 'localhost looked up: IPv4 only, for an IPv4 socket')
    // Node 1 sees node 2 under the address it was given, not as ::ffff:127.0.0.2.
    const seen = ((await (await fetch(`${n1.node.adminUrl}/v1/peers`)).json()) as { peers: Array<{ address: string; packetsIn: number; packetsOut: number }> }).peers
    const entry = seen.find((p) => p.address === `127.0.0.2:${n2.sync}`)
    assert.ok(entry !== undefined && entry.packetsIn > 0 && entry.packetsOut > 0, JSON.stringify(seen))
  } finally {
    await farm.stop()
  }
})

test('a --sync-peer of the other address family than --sync-listen is refused at start', async () => {
  const [port, admin] = await freePorts(2) as [number, number]
  const dir = tempDir()
  const result = await runNodeToExit(['--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${admin}`, '--sync-secret-file', writeFarmSecret(dir),
    '--sync-listen', `127.0.0.1:${port}`, '--sync-peer', `[::1]:${port}`])
  assert.equal(result.code, 2, result.stderr)
  assert.match(result.stderr, /--sync-peer \[::1\]:\d+ is an IPv6 address, but --sync-listen 127\.0\.0\.1:\d+ makes an IPv4 socket, which cannot send to it: listen on \[::\]:\d+ to reach both families \(TLSFLEET_ERR_CONFIG_CONFLICT\)/)
})

test('two nodes started with one --node-id: each says so (their updates are skipped as their own)', async () => {
  const farm = await startFarm(['127.0.0.1', '127.0.0.2'], {
    sync: (i, ports) => ['--node-id', 'twin', '--sync-listen', `127.0.0.${i + 1}:${ports[i] as number}`, '--sync-peer', `127.0.0.${2 - i}:${ports[1 - i] as number}`]
  })
  try {
    for (const [i, n] of farm.nodes.entries()) {
      await sClient({ host: n.host, port: n.port, tls: '1.2', sessOut: path.join(farm.dir, `twin-${i}.pem`), extra: ['-no_ticket'] })
    }
    for (const [i, n] of farm.nodes.entries()) {
      const other = farm.nodes[1 - i] as typeof n
      await n.node.waitForLog((l) => String(l.msg).includes('two nodes share one --node-id') && l.from === `${other.host}:${other.sync}`, 5000)
    }
    await new Promise((resolve) => setTimeout(resolve, 300))
    const node1 = farm.nodes[0] as typeof farm.nodes[0]
    assert.equal(node1.node.logs.filter((l) => String(l.msg).includes('two nodes share one --node-id')).length, 1, 'once per sender')
  } finally {
    await farm.stop()
  }
})

test('two nodes on one host with one --node-id in one multicast group: each says so, though both send from the group\'s port on one address', async () => {
  const group = '239.255.42.98'
  const port = await freePort()
  const farm = await startFarm(['127.0.0.1', '127.0.0.2'], {
    sync: () => ['--node-id', 'twin', '--sync-listen', `${group}:${port}`, '--sync-interface', '127.0.0.1,1']
  })
  try {
    for (const [i, n] of farm.nodes.entries()) {
      await sClient({ host: n.host, port: n.port, tls: '1.2', sessOut: path.join(farm.dir, `mc-twin-${i}.pem`), extra: ['-no_ticket'] })
    }
    for (const n of farm.nodes) {
      await n.node.waitForLog((l) => String(l.msg).includes('sent by another process (its sequence number is none of ours): two nodes share one --node-id') && l.from === `127.0.0.1:${port}`, 5000)
    }
    // Its own echoes are still its own, and counted as such.
    assert.ok(await (farm.nodes[0] as typeof farm.nodes[0]).node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'own' }) >= 2)
  } finally {
    await farm.stop()
  }
})
