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
})
