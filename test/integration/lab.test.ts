import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import { test } from 'node:test'
import { tlsHandshake } from '../../src/lab/tls-client.js'
import { CLI } from '../helpers/node-process.js'
import { freePort } from '../helpers/ports.js'

interface Lab { child: ChildProcess; output: () => string; exited: Promise<number | null> }

function startLab (args: string[]): Lab {
  const child = spawn(process.execPath, [CLI, 'lab', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  process.once('exit', () => child.kill('SIGTERM'))
  return { child, output: () => output, exited }
}

/** Stop the lab the way a user does (it then stops its children); SIGKILL only as a last resort. */
async function stopLab (lab: Lab): Promise<void> {
  if (lab.child.exitCode !== null || lab.child.signalCode !== null) return
  lab.child.kill('SIGTERM')
  const done = await Promise.race([lab.exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 20_000).unref())])
  if (!done) lab.child.kill('SIGKILL')
}

async function waitFor (lab: Lab, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const match = pattern.exec(lab.output())
    if (match !== null) return match
    if (lab.child.exitCode !== null || Date.now() > deadline) throw new Error(`lab output never matched ${String(pattern)}:\n${lab.output()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Processes whose command line mentions `text` (the lab's temporary directory). */
function processesMentioning (text: string): string[] {
  const out = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).stdout
  return out.split('\n').filter((line) => line.includes(text) && !line.includes('ps -eo'))
}

test('tlsfleet lab starts haproxy, 3 nodes and 2 backends, serves a request end to end, and stops cleanly on SIGINT', async () => {
  const port = await freePort('127.0.0.10')
  const lab = startLab(['--listen', `127.0.0.10:${port}`])
  try {
    await waitFor(lab, /lab: ready/, 45_000)
    const dir = (await waitFor(lab, /config (\/\S+)\/haproxy\.cfg/, 1000))[1] as string
    assert.equal(processesMentioning(dir).length >= 3, true, 'the nodes run with the lab\'s files')
    const answer = await tlsHandshake({ host: '127.0.0.10', port, version: '1.2', tickets: true, request: true, timeoutMs: 5000 })
    assert.equal(answer.ok, true, answer.error)
    const json = JSON.parse((answer.body ?? '').split('\r\n\r\n')[1] ?? '') as { backend: string; client: string; proxyProtocol: number }
    assert.match(json.backend, /^web[12]$/)
    // The demo backend saw our own address: HAProxy → node (PROXY v2) → backend (PROXY v1).
    assert.equal(json.client, `127.0.0.1:${answer.localPort}`)
    assert.equal(json.proxyProtocol, 1)

    lab.child.kill('SIGINT')
    const code = await Promise.race([lab.exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), 30_000).unref())])
    assert.equal(code, 0, lab.output())
    assert.match(lab.output(), /lab: stopped/)
    assert.equal(fs.existsSync(dir), false, 'temporary directory removed')
    assert.deepEqual(processesMentioning(dir), [], 'no process left behind')
    const after = await tlsHandshake({ host: '127.0.0.10', port, version: '1.2', tickets: true, timeoutMs: 2000 })
    assert.equal(after.ok, false, 'haproxy no longer listens')
  } finally {
    await stopLab(lab)
  }
})

interface Report { acts: Array<{ event: { kind: string; node: string; at: number; until?: number }; clients: number; resumed: number; full: number; resumedShare: number; cut: number }>; totals: { connections: number; errors: number }; failures: Array<{ start: number; end: number; node: string; error: string }>; timeline: Array<{ nodes: Record<string, { full: number; resumed: number }> }> }

async function failover (sync: string, extra: string[] = ['--acts', 'kill'], timeoutMs = 60_000): Promise<Report> {
  const port = await freePort('127.0.0.10')
  const lab = startLab(['--listen', `127.0.0.10:${port}`, '--failover', '--json', '--act-seconds', '3', '--clients', '30', '--rate', '60', '--sync', sync, ...extra])
  try {
    const code = await Promise.race([lab.exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref())])
    assert.equal(code, 0, lab.output())
    const text = lab.output()
    const json = text.slice(text.indexOf('{\n'), text.lastIndexOf('}') + 1)
    return JSON.parse(json) as Report
  } finally {
    await stopLab(lab)
  }
}

/**
 * A SIGKILL cuts the connections the node was serving; HAProxy redispatches the ones that come
 * after (the port refuses), so errors other than those cut are rare. How many are in flight at
 * a kill depends on the machine's load, so those are not bounded.
 */
function assertOnlyCutConnectionsFail (report: Report): void {
  // From the SIGKILL until the processes are gone, the kernel still accepts on the node's port.
  const kills = report.acts.filter((a) => a.event.kind === 'kill').map((a) => ({ at: a.event.at, until: a.event.until ?? a.event.at }))
  assert.ok(kills.every((k) => k.until >= k.at), JSON.stringify(kills))
  const notCut = report.failures.filter((f) => !kills.some((k) => f.start < k.until && f.end >= k.at))
  assert.ok(notCut.length <= 2, `errors not cut by a kill (${JSON.stringify(kills)} ms): ${JSON.stringify(notCut)}; all: ${report.totals.errors}`)
  assert.equal(report.failures.length, Math.min(report.totals.errors, 50))
}

test('failover scene: the clients of the killed node resume on the other nodes (shared sessions)', async () => {
  const report = await failover('unicast')
  const kill = report.acts.find((a) => a.event.kind === 'kill')
  assert.ok(kill !== undefined, JSON.stringify(report.acts))
  assert.equal(kill.event.node, 'node1')
  assert.ok(kill.clients >= 3, `too few clients on node1: ${JSON.stringify(kill)}`)
  assert.ok(kill.resumed >= 3, JSON.stringify(kill))
  assert.ok(kill.resumedShare >= 0.9, `only ${kill.resumed} of ${kill.resumed + kill.full} resumed on other nodes`)
  assert.ok(report.totals.connections > 100)
  assertOnlyCutConnectionsFail(report)
  // After the kill node1 serves nothing, and the per-second timeline shows it.
  const last = report.timeline[report.timeline.length - 1]
  assert.equal((last?.nodes.node1?.full ?? 0) + (last?.nodes.node1?.resumed ?? 0), 0)
})

test('a lab killed with SIGKILL leaves no process behind (its watchdog stops them), nor its directory with the farm secret and keys', async () => {
  const port = await freePort('127.0.0.10')
  const lab = startLab(['--listen', `127.0.0.10:${port}`, '--sync', 'off'])
  try {
    await waitFor(lab, /lab: ready/, 45_000)
    const dir = (await waitFor(lab, /config (\/\S+)\/haproxy\.cfg/, 1000))[1] as string
    assert.ok(processesMentioning(dir).length >= 4, 'haproxy and the nodes run')
    lab.child.kill('SIGKILL')
    await lab.exited
    const deadline = Date.now() + 10_000
    while (processesMentioning(dir).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200))
    assert.deepEqual(processesMentioning(dir), [])
    while (fs.existsSync(dir) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200))
    const left = fs.existsSync(dir)
    fs.rmSync(dir, { recursive: true, force: true })
    assert.equal(left, false, `the watchdog left ${dir}`)
  } finally {
    await stopLab(lab)
  }
})

test('failover scene with sharing off: the same clients pay full handshakes on the other nodes', async () => {
  const report = await failover('off')
  const kill = report.acts.find((a) => a.event.kind === 'kill')
  assert.ok(kill !== undefined)
  assert.ok(kill.clients >= 3, JSON.stringify(kill))
  assert.ok(kill.resumedShare <= 0.1, `sessions resumed without sharing: ${JSON.stringify(kill)}`)
})

test('failover scene in a mixed farm: ticket clients resume from an HAProxy-terminated node on the others, and from the tlsfleet node on an HAProxy one', async () => {
  // node1 and node3: a local HAProxy terminates TLS; node2: tlsfleet. node1 dies (its clients go
  // to node2 and node3), then node2 is drained and stopped (its clients go to node3).
  const report = await failover('unicast', ['--terminator', 'mixed', '--acts', 'kill,drain', '--clients-kind', 'tls12-ticket,tls13-ticket'], 90_000)
  for (const kind of ['kill', 'stop']) {
    const act = report.acts.find((a) => a.event.kind === kind)
    assert.ok(act !== undefined, JSON.stringify(report.acts))
    assert.ok(act.resumed + act.full >= 3, `too few clients moved at ${kind}: ${JSON.stringify(act)}`)
    assert.ok(act.resumedShare >= 0.9, `${kind}: only ${act.resumed} of ${act.resumed + act.full} ticket clients resumed on another node`)
  }
  assertOnlyCutConnectionsFail(report)
})

test('a lab whose --listen is busy refuses at once with TLSFLEET_ERR_ADDRESS_IN_USE and starts nothing', async () => {
  const port = await freePort('127.0.0.10')
  const holder = net.createServer()
  await new Promise<void>((resolve) => holder.listen(port, '127.0.0.10', resolve))
  try {
    const started = performance.now()
    const lab = startLab(['--listen', `127.0.0.10:${port}`, '--sync', 'off'])
    // Every process the lab starts is its child (backends, nodes, haproxy, the watchdog): watched until it exits.
    const children = new Set<string>()
    const watch = setInterval(() => {
      const rows = spawnSync('ps', ['-eo', 'ppid=,pid=,args='], { encoding: 'utf8' }).stdout.split('\n')
      for (const row of rows) if (row.trim().split(/\s+/)[0] === String(lab.child.pid)) children.add(row.trim())
    }, 50)
    const code = await Promise.race([lab.exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 15_000).unref())])
    clearInterval(watch)
    await stopLab(lab)
    assert.equal(code, 3, lab.output())
    assert.ok(performance.now() - started < 10_000, `${Math.round(performance.now() - started)} ms`)
    assert.match(lab.output(), new RegExp(`^tlsfleet: 127\\.0\\.0\\.10:${port} is already in use by another process: stop that process or give another --listen \\(TLSFLEET_ERR_ADDRESS_IN_USE\\)$`, 'm'))
    assert.doesNotMatch(lab.output(), /starting haproxy|backend web1|node1/, 'nothing started')
    assert.deepEqual([...children], [], 'no child process')
  } finally {
    await new Promise((resolve) => holder.close(resolve))
  }
})
