import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'

// IPv6 multicast does not work on the loopback interface, so this test makes its own network
// namespace with a veth pair (two "hosts" on one link): node 1 joins the group on one end,
// node 2 on the other. Everything runs inside the namespace; it is deleted afterwards.
const NS = `tlsfleet-mc6-${process.pid}`
const IN_NS = ['ip', 'netns', 'exec', NS]
const ip = (...args: string[]): void => { execFileSync('ip', args, { stdio: 'pipe' }) }
const nodes: RunningNode[] = []

before(() => {
  ip('netns', 'add', NS)
  // No duplicate address detection: the link-local addresses are usable at once.
  execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'])
  ip('-n', NS, 'link', 'set', 'lo', 'up')
  ip('-n', NS, 'link', 'add', 'mc6a', 'type', 'veth', 'peer', 'name', 'mc6b')
  ip('-n', NS, 'link', 'set', 'mc6a', 'up')
  ip('-n', NS, 'link', 'set', 'mc6b', 'up')
  // Global addresses too, as hosts on a LAN have: a socket bound to a link-local address
  // reaches only link-local ones.
  ip('-n', NS, '-6', 'addr', 'add', 'fd99::1/64', 'dev', 'mc6a', 'nodad')
  ip('-n', NS, '-6', 'addr', 'add', 'fd99::2/64', 'dev', 'mc6b', 'nodad')
})

after(async () => {
  await Promise.all(nodes.map(async (n) => await n.stop()))
  try { ip('netns', 'del', NS) } catch { /* already gone */ }
})

test('IPv6 multicast: two nodes in a test namespace join ff12::/16 on their own interfaces, share sessions, and a restarted one warm-joins', async () => {
  const dir = tempDir()
  const cert = makeCertificate(dir, 'mc6', ['localhost'])
  const secret = writeFarmSecret(dir)
  const group = '[ff12::7f5:4242]:19446'
  const tls = [19443, 19444]
  const args = (i: number, iface: string): string[] => [
    '--workers', '1', '--listen', `[::1]:${tls[i] as number}`, '--cert', cert, '--node-id', `mc6-node${i + 1}`,
    '--sync-secret-file', secret, '--sync-listen', group, '--sync-interface', `${iface},1`, '--warm-join-timeout', '1',
    '--state-dir', path.join(dir, `state${i + 1}`)
  ]
  for (const [i, iface] of ['mc6a', 'mc6b'].entries()) nodes.push(await startNode(args(i, iface), { adminPort: 19445 + i * 10, wrap: IN_NS }))
  const sess = path.join(dir, 'mc6-session.pem') // not mc6.pem: that is the certificate
  const first = await sClient({ host: '::1', port: tls[0] as number, tls: '1.2', sessOut: sess, extra: ['-no_ticket'], wrap: IN_NS })
  assert.equal(first.reused, false, first.output)
  let again = first
  const deadline = Date.now() + 3000
  while (!again.reused && Date.now() < deadline) {
    again = await sClient({ host: '::1', port: tls[1] as number, tls: '1.2', sessIn: sess, extra: ['-no_ticket'], wrap: IN_NS })
  }
  assert.equal(again.reused, true, `session from node 1 not resumed on node 2 over IPv6 multicast:\n${again.output}`)
  assert.ok(nodes[0]?.logs.some((l) => l.msg === 'farm sync listening' && l.multicast === true), 'node 1 did not join the group')
  // Node 2 again: its request goes to the group from a link-local address of its own interface,
  // node 1's challenge and snapshot come back to it there.
  await nodes[1]?.stop()
  nodes[1] = await startNode(args(1, 'mc6b'), { adminPort: 19455, wrap: IN_NS })
  const join = nodes[1].logs.find((l) => l.msg === 'warm join done')
  assert.ok(join !== undefined && Number(join.sessions) >= 1, `the warm join over IPv6 multicast brought nothing: ${JSON.stringify(join)}`)

  // --sync-interface by address: IPv6 chooses the interface by index only, so the address must
  // lead to mc6b's index, not to the kernel's default multicast route (here a third link where
  // nobody listens).
  ip('-n', NS, 'link', 'add', 'mc6x', 'type', 'veth', 'peer', 'name', 'mc6y')
  ip('-n', NS, 'link', 'set', 'mc6x', 'up')
  ip('-n', NS, 'link', 'set', 'mc6y', 'up')
  ip('-n', NS, '-6', 'route', 'add', 'multicast', 'ff00::/8', 'dev', 'mc6x', 'table', 'local', 'metric', '1')
  await nodes[1]?.stop()
  const byAddress = args(1, 'fd99::2')
  nodes[1] = await startNode(byAddress, { adminPort: 19455, wrap: IN_NS })
  const joined = nodes[1].logs.find((l) => l.msg === 'warm join done')
  assert.ok(joined !== undefined && Number(joined.sessions) >= 1, `--sync-interface fd99::2: the warm join brought nothing: ${JSON.stringify(joined)}`)
  // And it joined the group on mc6b: a session made on node 1 now reaches it, and one of its own reaches node 1.
  for (const [from, to] of [[0, 1], [1, 0]] as const) {
    const file = path.join(dir, `by-address-${from}.pem`)
    assert.equal((await sClient({ host: '::1', port: tls[from] as number, tls: '1.2', sessOut: file, extra: ['-no_ticket'], wrap: IN_NS })).reused, false)
    let resumed = false
    const until = Date.now() + 3000
    while (!resumed && Date.now() < until) resumed = (await sClient({ host: '::1', port: tls[to] as number, tls: '1.2', sessIn: file, extra: ['-no_ticket'], wrap: IN_NS })).reused
    assert.equal(resumed, true, `--sync-interface fd99::2: a session made on node ${from + 1} did not resume on node ${to + 1}`)
  }
})
