import assert from 'node:assert/strict'
import fs from 'node:fs'
import { test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { pollUntil, startHaproxy, TCP_DEFAULTS } from '../helpers/haproxy.js'
import { startNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

/**
 * A stop drains the node in HAProxy through the Runtime API, and HAProxy keeps that CLI state
 * after the node is gone. Without agent-check (whose `ready` would undo it) a restarted node
 * stayed DRAIN for good; now the start tells HAProxy the node's state once it serves.
 */
test('without agent-check, a restarted node is READY in HAProxy again (the drain its stop set is undone), and --initial-state maint is mirrored', async (t) => {
  const [tlsPort, adminPort, backendPort] = await freePorts(3) as [number, number, number]
  const haproxy = await startHaproxy(`${TCP_DEFAULTS}\nbackend be\n  server n1 127.0.0.1:${tlsPort} weight 100 check inter 300\n`, { t })
  const dir = tempDir()
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const args = ['--workers', '1', '--listen', `127.0.0.1:${tlsPort}`, '--backend', `127.0.0.1:${backendPort}`, '--cert', makeCertificate(dir, 'n', ['localhost']),
    '--haproxy-socket', haproxy.socketPath, '--haproxy-server', 'be/n1']
  const admin = async (): Promise<string[]> => (await haproxy.api.showServersState('be')).find((r) => r.srv_name === 'n1')?.admin_flags ?? []
  const status = async (): Promise<string | undefined> => (await haproxy.api.showStat()).find((r) => r.pxname === 'be' && r.svname === 'n1')?.status

  let node = await startNode(args, { adminPort })
  await pollUntil('n1 UP', async () => (await status()) === 'UP' ? true : undefined)
  assert.equal(await node.stop('SIGTERM'), 0)
  assert.deepEqual(await admin(), ['FDRAIN'], 'the stop drained the node in HAProxy')

  node = await startNode(args, { adminPort })
  t.after(async () => { await node.stop() })
  const done = await node.waitForLog((l) => l.msg === 'haproxy runtime API command done', 5000)
  assert.equal(done.command, 'set server be/n1 state ready')
  assert.deepEqual(await admin(), [], 'the restarted node is no longer drained in HAProxy')
  assert.equal(await pollUntil('n1 UP again', async () => { const s = await status(); return s === 'UP' ? s : undefined }), 'UP')
  assert.equal(await node.stop('SIGTERM'), 0)

  node = await startNode([...args, '--initial-state', 'maint'], { adminPort })
  await node.waitForLog((l) => l.msg === 'haproxy runtime API command done' && l.command === 'set server be/n1 state maint', 5000)
  assert.deepEqual(await admin(), ['FMAINT'], '--initial-state maint reaches HAProxy without an agent')
})
