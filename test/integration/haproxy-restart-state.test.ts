import assert from 'node:assert/strict'
import fs from 'node:fs'
import { test } from 'node:test'
import { runCli, writeToken } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { pollUntil, startHaproxy, TCP_DEFAULTS } from '../helpers/haproxy.js'
import { sumMetric } from '../../src/metrics/prometheus-text.js'
import { eventually, startNode } from '../helpers/node-process.js'
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

/**
 * A restarted front HAProxy (a new process, not a reload) starts from its config: the drain the
 * node set through the Runtime API is gone. Without agent-check nothing told it again; the node
 * reads `show info` every 3 s and, on a new pid or start time, says its state again.
 */
test('without agent-check, a drained node is DRAIN again in a restarted HAProxy (new process, same config and socket) within a bounded time', async (t) => {
  const [tlsPort, adminPort, backendPort] = await freePorts(3) as [number, number, number]
  const dir = tempDir()
  const haproxyDir = fs.mkdtempSync(`${dir}/haproxy-`)
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const config = `${TCP_DEFAULTS}\nbackend be\n  server n1 127.0.0.1:${tlsPort} weight 100 check inter 300\n`
  let haproxy = await startHaproxy(config, { dir: haproxyDir, ports: 0 })
  t.after(async () => { await haproxy.stop() })
  const { file: tokenFile, token } = writeToken(dir)
  const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${tlsPort}`, '--backend', `127.0.0.1:${backendPort}`, '--cert', makeCertificate(dir, 'n', ['localhost']),
    '--haproxy-socket', haproxy.socketPath, '--haproxy-server', 'be/n1', '--admin-token-file', tokenFile], { adminPort })
  t.after(async () => { await node.stop() })
  const row = async (): Promise<{ status?: string; flags: string[] }> => ({
    status: (await haproxy.api.showStat()).find((r) => r.pxname === 'be' && r.svname === 'n1')?.status,
    flags: (await haproxy.api.showServersState('be')).find((r) => r.srv_name === 'n1')?.admin_flags ?? []
  })
  await pollUntil('n1 UP', async () => (await row()).status === 'UP' ? true : undefined)

  const drain = await runCli(['drain', '--admin', node.adminUrl, '--token-file', tokenFile])
  assert.equal(drain.code, 0, drain.stderr)
  assert.deepEqual(await row(), { status: 'DRAIN', flags: ['FDRAIN'] })

  const oldPid = haproxy.pid
  await haproxy.stop()
  haproxy = await startHaproxy(config, { dir: haproxyDir, ports: 0 })
  assert.notEqual(haproxy.pid, oldPid)
  const restartedAt = Date.now()
  // The new process starts from its config; the node tells it within one read (3 s) and a margin.
  const back = await pollUntil('n1 DRAIN in the new haproxy', async () => { const r = await row(); return r.flags.includes('FDRAIN') ? r : undefined }, 8000)
  assert.deepEqual(back.flags, ['FDRAIN'])
  assert.ok(Date.now() - restartedAt < 3000 + 2000, `told within a read interval and a margin: ${Date.now() - restartedAt} ms`)
  const told = await node.waitForLog((l) => l.msg === 'the front haproxy restarted: telling it this node\'s state again (a new process keeps none set through its Runtime API)', 1000)
  assert.equal(told.haproxyPid, haproxy.pid)
  assert.equal(told.state, 'drain')
  await pollUntil('n1 DRAIN status', async () => (await row()).status === 'DRAIN' ? true : undefined)
  // The reads are counted as the node's other Runtime API commands (/metrics is built at most once a second).
  const reads = async (): Promise<number> => sumMetric(await (await fetch(`${node.adminUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text(), 'tlsfleet_haproxy_commands_total', { command: 'show info', result: 'ok' })
  await eventually(async () => await reads() >= 2, 3000, 'the show info reads counted')
})
