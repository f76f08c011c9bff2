import assert from 'node:assert/strict'
import fs from 'node:fs'
import { test } from 'node:test'
import { runCli } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { startHaproxy, TCP_DEFAULTS } from '../helpers/haproxy.js'
import { startNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

/**
 * `tlsfleet drain` on a node whose --haproxy-server HAProxy does not know: the real HAProxy
 * answers "No such server.", the node logs that refusal as every Runtime API failure is
 * logged (an `err` with TLSFLEET_ERR_HAPROXY_RUNTIME and HAProxy's reply), and the CLI ends
 * with TLSFLEET_ERR_ADMIN_CLIENT naming HAProxy's reason.
 */
test('HAProxy refusing the drain is logged as a TLSFLEET_ERR_HAPROXY_RUNTIME error and printed by the CLI with its reason', async (t) => {
  const [tlsPort, adminPort, backendPort] = await freePorts(3) as [number, number, number]
  const haproxy = await startHaproxy(`${TCP_DEFAULTS}\nbackend be\n  server n1 127.0.0.1:${tlsPort} weight 100\n`, { t })
  const dir = tempDir()
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const node = await startNode([
    '--workers', '1', '--listen', `127.0.0.1:${tlsPort}`, '--backend', `127.0.0.1:${backendPort}`, '--cert', makeCertificate(dir, 'n', ['localhost']),
    '--haproxy-socket', haproxy.socketPath, '--haproxy-server', 'be/nosuch'
  ], { adminPort })
  t.after(async () => { await node.stop() })
  // The start already says the node's state to HAProxy: a wrong --haproxy-server shows at once.
  const atStart = await node.waitForLog((l) => l.msg === 'haproxy runtime API command failed', 5000)
  assert.equal(atStart.command, 'set server be/nosuch state ready', JSON.stringify(atStart))

  const drain = await runCli(['drain', '--admin', node.adminUrl])
  assert.equal(drain.code, 1, drain.stdout + drain.stderr)
  assert.match(drain.stdout, /haproxy: set server be\/nosuch state drain: FAILED: haproxy rejected "set server be\/nosuch state drain": No such server\./)
  assert.match(drain.stderr, /^tlsfleet: the node is now drain, but HAProxy refused: haproxy rejected "set server be\/nosuch state drain": No such server\.; .* \(TLSFLEET_ERR_ADMIN_CLIENT\)$/m)

  const line = await node.waitForLog((l) => l.msg === 'haproxy runtime API command failed' && l.command === 'set server be/nosuch state drain', 5000)
  assert.equal(line.command, 'set server be/nosuch state drain', JSON.stringify(line))
  assert.equal(line.error, undefined, 'no plain-string error field')
  const err = line.err as { type?: string; code?: string; message?: string; output?: string } | undefined
  assert.equal(err?.code, 'TLSFLEET_ERR_HAPROXY_RUNTIME', JSON.stringify(line))
  assert.equal(err?.type, 'HaproxyRuntimeError')
  assert.match(err?.message ?? '', /No such server\./)
  assert.equal(line.level, 50, 'logged at error level')
})
