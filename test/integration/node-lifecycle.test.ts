import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import tls from 'node:tls'
import { test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { childPids, CLI, eventually, REPO_ROOT, startNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'


function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

/** Whether the process catches SIGHUP yet (SigCgt bit 0): the launcher's first lines ran. */
function catchesHup (pid: number): boolean {
  try { return (BigInt('0x' + (/SigCgt:\s*([0-9a-f]+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '0')) & 1n) === 1n } catch { return false }
}

async function portIsFree (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

test('SIGTERM: stop accepting, let the open connection finish, then exit 0', async () => {
  const dir = tempDir()
  const backend = await startRecordingBackend()
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '2', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`,
    '--cert', makeCertificate(dir, 'n', ['localhost']), '--grace-period', '10'], { adminPort: admin })
  const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false })
  await new Promise<void>((resolve) => socket.once('secureConnect', resolve))
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString() })
  socket.write('before')
  await eventually(() => text.includes('echo:before'), 5000, 'first echo')

  const exited = new Promise<number | null>((resolve) => node.process.once('exit', (code) => resolve(code)))
  node.process.kill('SIGTERM')
  await eventually(async () => await portIsFree(port), 5000, 'listeners closed')
  socket.write('during')
  await eventually(() => text.includes('echo:during'), 5000, 'echo during the grace period')
  assert.equal(node.process.exitCode, null, 'the node left before the open connection finished')
  socket.end()
  assert.equal(await exited, 0)
  await backend.close()
})

/** Resolves with the exit code and how long after `since` (ms) the process left. */
async function exitOf (child: import('node:child_process').ChildProcess, since: () => number): Promise<{ code: number | null; afterMs: number }> {
  return await new Promise((resolve) => child.once('exit', (code) => resolve({ code, afterMs: Date.now() - since() })))
}

test('the grace period ends with the connections still open: cut, and how many is logged; a hung worker is killed, logged, and the exit status is 1', async () => {
  const dir = tempDir()
  const backend = await startRecordingBackend()
  const cert = makeCertificate(dir, 'g', ['localhost'])
  const [port, admin] = await freePorts(2) as [number, number]
  const args = ['--workers', '1', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`, '--cert', cert, '--grace-period', '1']
  try {
    const node = await startNode(args, { adminPort: admin })
    const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false })
    socket.on('error', () => {})
    await new Promise<void>((resolve) => socket.once('secureConnect', resolve))
    assert.equal(await node.stop('SIGTERM', 15_000), 0, node.diagnosis())
    const cut = node.logs.find((l) => l.msg === 'grace period over: closing the connections still open')
    assert.equal(cut?.connections, 1, node.diagnosis())
    socket.destroy()

    const hung = await startNode(args, { adminPort: admin })
    const [worker] = childPids(hung.process.pid as number)
    assert.ok(worker !== undefined)
    process.kill(worker, 'SIGSTOP')
    const code = await hung.stop('SIGTERM', 15_000)
    assert.equal(code, 1, `a stop that had to kill a hung worker exited ${String(code)}:\n${hung.diagnosis()}`)
    assert.ok(hung.logs.some((l) => l.msg === 'workers still running 2 s after the grace period (hung): killed' && (l.pids as number[]).includes(worker)), hung.diagnosis())
    assert.ok(hung.logs.some((l) => l.msg === 'the stop failed'), 'the reason is in the JSON log')
    assert.equal(alive(worker), false)
  } finally {
    await backend.close()
  }
})

test('signals while the CLI is still loading: SIGHUP does not kill it (it starts and serves), SIGTERM stops it with status 0', async () => {
  const dir = tempDir()
  const cert = makeCertificate(dir, 'early', ['localhost'])
  for (const signal of ['SIGHUP', 'SIGTERM'] as const) {
    const [port, admin] = await freePorts(2) as [number, number]
    const child = spawn(process.execPath, [CLI, 'node', '--log-format', 'json', '--workers', '1', '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${admin}`, '--cert', cert, '--state-dir', path.join(dir, `state-${signal}`)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { out += d.toString() })
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    try {
      await eventually(() => catchesHup(child.pid as number), 5000, 'the launcher running')
      const ready = out.includes('tlsfleet node ready')
      child.kill(signal)
      if (signal === 'SIGTERM') {
        assert.equal(await exited, 0, out)
      } else {
        await eventually(() => out.includes('tlsfleet node ready'), 30_000, `ready after an early SIGHUP (ready already: ${String(ready)}):\n${out}`)
        assert.equal(child.exitCode, null)
      }
    } finally {
      child.kill('SIGTERM')
      await exited
    }
  }
})

test('SIGHUPs during the first start (no --cert, empty --state-dir): the self-signed certificate is generated once, and the node serves it', async () => {
  const dir = tempDir()
  const stateDir = path.join(dir, 'state')
  const [port, admin] = await freePorts(2) as [number, number]
  const child = spawn(process.execPath, [CLI, 'node', '--log-format', 'json', '--workers', '1', '--listen', `127.0.0.1:${port}`,
    '--admin-listen', `127.0.0.1:${admin}`, '--state-dir', stateDir], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  let hups: NodeJS.Timeout | undefined
  try {
    // From the moment a SIGHUP no longer kills it (before that, the default action would).
    await eventually(() => catchesHup(child.pid as number), 5000, 'the launcher running')
    let sent = 0
    hups = setInterval(() => { child.kill('SIGHUP'); sent++ }, 20)
    await eventually(() => out.includes('tlsfleet node ready'), 30_000, `ready while SIGHUPs keep coming:\n${out}`)
    clearInterval(hups)
    assert.ok(sent > 5, `only ${sent} SIGHUPs during the start`)
    const generated = out.split('\n').filter((line) => line.includes('generated a self-signed certificate'))
    assert.equal(generated.length, 1, out)
    // What it serves is the certificate kept in --state-dir (generated twice, the file could be
    // the second one and the workers serve the first).
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false })
    await new Promise<void>((resolve) => socket.once('secureConnect', resolve))
    const served = socket.getPeerX509Certificate()
    socket.destroy()
    const kept = new crypto.X509Certificate(fs.readFileSync(path.join(stateDir, 'self-signed.pem')))
    assert.equal(served?.fingerprint256, kept.fingerprint256)
    assert.equal(child.exitCode, null)
    // The SIGHUPs waiting behind the start (and behind each reload) joined one reload: fewer
    // reloads than SIGHUPs, once the last has run (the log quiet for a second).
    for (let lines = -1, deadline = Date.now() + 20_000; out.length !== lines && Date.now() < deadline;) {
      lines = out.length
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
    const reloads = out.split('\n').filter((line) => line.includes('certificates reloaded')).length
    assert.ok(reloads >= 1 && reloads < sent, `${reloads} reloads for ${sent} SIGHUPs`)
  } finally {
    clearInterval(hups)
    child.kill('SIGTERM')
    await exited
  }
})

test('SIGTERM while the node is still starting (its workers forked, not yet serving): it stops at once and never serves', async () => {
  const dir = tempDir()
  const [port, admin, sync, silentPeer] = await freePorts(4) as [number, number, number, number]
  const child = spawn(process.execPath, [CLI, 'node', '--log-format', 'json', '--workers', '2', '--listen', `127.0.0.1:${port}`,
    '--cert', makeCertificate(dir, 'n', ['localhost']), '--admin-listen', `127.0.0.1:${admin}`, '--state-dir', path.join(dir, 'state'),
    '--sync-listen', `127.0.0.1:${sync}`, '--sync-peer', `127.0.0.1:${silentPeer}`, '--sync-secret-file', writeFarmSecret(dir),
    '--warm-join-timeout', '0.5', '--grace-period', '8'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let signalled = 0
  const exited = exitOf(child, () => signalled)
  // The workers are forked right after the warm join (a peer that never answers ends it at its timeout).
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString()
    if (signalled === 0 && out.includes('warm join done')) {
      signalled = Date.now()
      child.kill('SIGTERM')
    }
  })
  try {
    const { code, afterMs } = await exited
    assert.ok(signalled > 0, 'never signalled')
    assert.equal(code, 0)
    assert.ok(afterMs < 4000, `it left ${afterMs} ms after SIGTERM with no connection open (the grace period is 8 s)`)
    assert.ok(!out.includes('tlsfleet node ready'), 'it went on to serve after the signal')
    assert.equal(await portIsFree(port), true)
  } finally {
    child.kill('SIGKILL')
  }
})

test('SIGTERM just after a worker was replaced: the new worker is stopped too, not left serving until the grace period ends', async () => {
  const dir = tempDir()
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '2', '--listen', `127.0.0.1:${port}`, '--cert', makeCertificate(dir, 'n', ['localhost']),
    '--grace-period', '8'], { adminPort: admin })
  const pid = node.process.pid as number
  const before = childPids(pid)
  process.kill(before[0] as number, 'SIGKILL')
  // The replacement is forked but still loading (well before it could tell the primary it is ready).
  await eventually(() => childPids(pid).some((p) => !before.includes(p)), 5000, 'the replacement forked')
  const signalled = Date.now()
  const code = await node.stop('SIGTERM', 20_000)
  const afterMs = Date.now() - signalled
  assert.equal(code, 0)
  assert.ok(afterMs < 4000, `it left ${afterMs} ms after SIGTERM with no connection open (the grace period is 8 s)`)
  assert.ok(!node.logs.some((l) => l.msg === 'worker died; replacing it' && l.signal === 'SIGKILL' && l.worker !== before[0]), 'a worker had to be killed')
})

test('SIGHUP to the whole process group (a terminal hangup, kill -HUP -PGID): a reload, the workers and their connections stay', async () => {
  const dir = tempDir()
  const backend = await startRecordingBackend()
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '2', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`,
    '--cert', makeCertificate(dir, 'n', ['localhost'])], { adminPort: admin, detached: true })
  try {
    const workers = childPids(node.process.pid as number)
    const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false })
    await new Promise<void>((resolve) => socket.once('secureConnect', resolve))
    let text = ''
    socket.on('data', (d: Buffer) => { text += d.toString() })
    process.kill(-(node.process.pid as number), 'SIGHUP')
    await node.waitForLog((l) => l.msg === 'certificates reloaded', 10_000)
    await new Promise((resolve) => setTimeout(resolve, 500))
    assert.ok(!node.logs.some((l) => l.msg === 'worker died; replacing it'), node.diagnosis())
    assert.deepEqual(childPids(node.process.pid as number), workers)
    socket.write('after-hup')
    await eventually(() => text.includes('echo:after-hup'), 5000, 'the connection open across the hangup still echoes')
    socket.destroy()
  } finally {
    await node.stop()
    await backend.close()
  }
})

test('SIGTERM to the primary and its workers at once (systemd KillMode=control-group) with --haproxy-socket: no worker is replaced while HAProxy is told; a worker signalled alone still is', async () => {
  const dir = tempDir()
  // A Runtime API that accepts and never answers: the stop's drain waits its whole timeout (2 s).
  const held = new Set<net.Socket>()
  const blackHole = net.createServer((socket) => {
    socket.on('error', () => {})
    held.add(socket)
  })
  await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve))
  const haproxy = (blackHole.address() as net.AddressInfo).port
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '2', '--listen', `127.0.0.1:${port}`, '--cert', makeCertificate(dir, 'n', ['localhost']),
    '--haproxy-socket', `127.0.0.1:${haproxy}`, '--haproxy-server', 'be/n1', '--grace-period', '8'], { adminPort: admin })
  const pid = node.process.pid as number
  let poll: NodeJS.Timeout | undefined
  try {
    // A worker stopped from outside, its primary not: it drains and is replaced, as before.
    const [lone] = childPids(pid) as [number]
    process.kill(lone, 'SIGTERM')
    await node.waitForLog((l) => l.msg === 'worker died; replacing it' && l.worker === lone, 5000)
    await eventually(async () => (await fetch(`${node.adminUrl}/v1/state`).then(async (r) => await r.json() as { workers?: { listening?: number } })).workers?.listening === 2, 5000, 'the replacement listening')
    assert.equal(await node.metric('tlsfleet_worker_restarts_total', { reason: 'died' }), 1)

    const workers = childPids(pid)
    assert.equal(workers.length, 2)
    const seen = new Set<number>()
    poll = setInterval(() => { for (const child of childPids(pid)) seen.add(child) }, 20)
    const exited = new Promise<number | null>((resolve) => node.process.once('exit', (code) => resolve(code)))
    // As systemd does: every process of the unit at once.
    for (const target of [pid, ...workers]) process.kill(target, 'SIGTERM')
    // While the stop waits on HAProxy: what the node counts then.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const restarts = await node.metric('tlsfleet_worker_restarts_total', { reason: 'died' })
    assert.equal(await exited, 0, node.diagnosis())
    clearInterval(poll)
    assert.equal(restarts, 1, 'workers were replaced during the stop')
    assert.deepEqual([...seen].filter((child) => !workers.includes(child)), [], 'new workers were forked during the stop')
    assert.equal(node.logs.filter((l) => l.msg === 'worker died; replacing it').length, 1, node.diagnosis())
    assert.ok(node.logs.some((l) => l.msg === 'stopped'), node.diagnosis())
  } finally {
    clearInterval(poll)
    await node.stop('SIGKILL')
    for (const socket of held) socket.destroy()
    await new Promise<void>((resolve) => blackHole.close(() => resolve()))
  }
})

test('a client stalled on the admin port (half a request) does not hold the stop', async () => {
  const dir = tempDir()
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--cert', makeCertificate(dir, 'n', ['localhost']),
    '--grace-period', '2'], { adminPort: admin })
  const stalled = net.connect({ host: '127.0.0.1', port: admin })
  stalled.on('error', () => {})
  await new Promise<void>((resolve) => stalled.once('connect', resolve))
  stalled.write('GET /v1/state HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  await new Promise((resolve) => setTimeout(resolve, 200))
  const signalled = Date.now()
  const code = await node.stop('SIGTERM', 20_000)
  const afterMs = Date.now() - signalled
  stalled.destroy()
  assert.equal(code, 0, node.diagnosis())
  assert.ok(afterMs < 2000, `it left ${afterMs} ms after SIGTERM (the hard deadline is the grace period + 5 s)`)
  assert.ok(node.logs.some((l) => l.msg === 'stopped'))
})

test('if the primary is killed, no worker is left holding the port', async () => {
  const dir = tempDir()
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '2', '--listen', `127.0.0.1:${port}`, '--cert', makeCertificate(dir, 'n', ['localhost'])], { adminPort: admin })
  const workers = childPids(node.process.pid as number)
  assert.equal(workers.length, 2)
  node.process.kill('SIGKILL')
  await eventually(() => workers.every((pid) => !alive(pid)), 10_000, 'workers to exit')
  assert.equal(await portIsFree(port), true)
})

test('if the primary is killed, its workers release the port at once, let open connections go on for 2 s, then leave', async () => {
  const dir = tempDir()
  const backend = await startRecordingBackend()
  const [port, admin] = await freePorts(2) as [number, number]
  // A grace period far longer than the 2 s a worker gives its clients once the primary is gone.
  const node = await startNode(['--workers', '2', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`,
    '--cert', makeCertificate(dir, 'n', ['localhost']), '--grace-period', '30'], { adminPort: admin })
  const workers = childPids(node.process.pid as number)
  assert.equal(workers.length, 2)
  const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false })
  socket.on('error', () => {})
  try {
    await new Promise<void>((resolve) => socket.once('secureConnect', resolve))
    let text = ''
    socket.on('data', (d: Buffer) => { text += d.toString() })
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())))
    socket.write('before')
    await eventually(() => text.includes('echo:before'), 5000, 'first echo')

    node.process.kill('SIGKILL')
    const killedAt = Date.now()
    // The port at once, so that a node started again (systemd's Restart=) can bind it.
    await eventually(async () => await portIsFree(port), 1000, 'the port released')
    await new Promise((resolve) => setTimeout(resolve, 500 - (Date.now() - killedAt)))
    socket.write('after-kill')
    await eventually(() => text.includes('echo:after-kill'), 1000, `bytes flowing 0.5 s after the primary died (closed: ${String(socket.destroyed)}, text: ${JSON.stringify(text)})`)
    // Then cut at 2 s, not at --grace-period, and every worker gone with it.
    const closedAfterMs = await closed - killedAt
    assert.ok(closedAfterMs >= 1500 && closedAfterMs < 4000, `the connection was closed ${closedAfterMs} ms after the primary died`)
    await eventually(() => workers.every((pid) => !alive(pid)), 4000 - (Date.now() - killedAt), 'every worker gone within 2 s and a margin')
    assert.ok(node.logs.some((l) => l.msg === 'the primary is gone: stopped accepting; open connections get 2 s' && l.level === 40), node.diagnosis())
  } finally {
    socket.destroy()
    for (const pid of workers) { try { process.kill(pid, 'SIGKILL') } catch { /* gone */ } }
    await backend.close()
  }
})

test('the default run needs no flags: self-signed certificate and the built-in demo backend', async () => {
  const dir = tempDir()
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--listen', `127.0.0.1:${port}`, '--state-dir', path.join(dir, 'state'), '--workers', '1'], { adminPort: admin })
  assert.ok(fs.existsSync(path.join(dir, 'state', 'self-signed.pem')))
  const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false })
  await new Promise<void>((resolve) => socket.once('secureConnect', resolve))
  assert.equal(socket.getPeerCertificate().subject.CN, 'localhost')
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString() })
  socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  await new Promise<void>((resolve) => socket.once('end', resolve))
  assert.match(text, /^HTTP\/1.1 200/)
  assert.match(text, /"backend":"demo"/)
  assert.equal(await node.stop('SIGINT'), 0)
})

test('a bad config value is refused at start, naming the key, the value and what is expected', () => {
  const run = (args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stderr: string } => {
    const r = spawnSync(process.execPath, [CLI, 'node', ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 15_000 })
    return { code: r.status, stderr: r.stderr }
  }
  let r = run(['--workers', 'many'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--workers: "many" is not valid for "workers": expected an integer from 1 to 256/)
  r = run([], { TLSFLEET_PROXY_PROTOCOL_IN: 'v3' })
  assert.equal(r.code, 2)
  assert.match(r.stderr, /TLSFLEET_PROXY_PROTOCOL_IN: "v3" is not valid for "proxy-protocol-in": expected one of off, v1, v2, auto/)
  r = run(['--listen', 'localhost'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /"listen": expected HOST:PORT/)
  const dir = tempDir()
  const file = path.join(dir, 'bad.yaml')
  fs.writeFileSync(file, 'session-timeout: -5\nworkers: 1\n')
  r = run(['--config', file])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /bad\.yaml key "session-timeout": "-5" is not valid for "session-timeout"/)
  fs.writeFileSync(file, 'sesion-timeout: 5\n')
  r = run(['--config', file])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /unknown key "sesion-timeout"/)
  // A refused certificate file is named by the option that gave it, as written: flag, variable or YAML key.
  r = run(['--cert', path.join(dir, 'missing.pem'), '--workers', '1'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^tlsfleet: --cert ".*missing\.pem": cannot read/)
  r = run(['--workers', '1'], { TLSFLEET_CERT: path.join(dir, 'missing.pem') })
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^tlsfleet: TLSFLEET_CERT ".*missing\.pem": cannot read/)
  fs.writeFileSync(file, `cert: ${path.join(dir, 'missing.pem')}\nworkers: 1\n`)
  r = run(['--config', file])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^tlsfleet: .*bad\.yaml key "cert" ".*missing\.pem": cannot read/)
  fs.mkdirSync(path.join(dir, 'certs'))
  fs.writeFileSync(path.join(dir, 'certs', 'empty.pem'), '')
  r = run(['--workers', '1'], { TLSFLEET_CERT_DIR: path.join(dir, 'certs') })
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^tlsfleet: TLSFLEET_CERT_DIR ".*certs": no usable certificate in it/m)

  // The farm secret: refused when others can read it, or when it is too short.
  const secret = path.join(dir, 'farm.key')
  fs.writeFileSync(secret, 'x'.repeat(48), { mode: 0o644 })
  fs.chmodSync(secret, 0o644)
  r = run(['--sync-secret-file', secret, '--workers', '1'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--sync-secret-file ".*farm\.key": readable by group or others \(mode 644\)/)
  fs.chmodSync(secret, 0o600)
  fs.writeFileSync(secret, 'short\n')
  r = run(['--sync-secret-file', secret, '--workers', '1'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /5 bytes; a farm secret needs at least 32/)
  r = run(['--sync-listen', '127.0.0.1:9', '--workers', '1', '--state-dir', path.join(dir, 'state')])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--sync-listen needs --sync-secret-file/)
  // A cipher for a format that has none is refused, not ignored.
  r = run(['--sync-format', 'stud', '--sync-cipher', 'aes-256-gcm', '--workers', '1', '--state-dir', path.join(dir, 'state-stud')])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--sync-cipher aes-256-gcm has no effect with --sync-format stud .*: drop --sync-cipher, or use --sync-format v2/)
  assert.equal(fs.existsSync(path.join(dir, 'state-stud')), false, 'refused before anything is written')
})

test('--accept-model shared: workers accept from one shared socket and sessions resume across them', async () => {
  const dir = tempDir()
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '2', '--listen', `127.0.0.1:${port}`, '--accept-model', 'shared',
    '--cert', makeCertificate(dir, 'n', ['localhost'])], { adminPort: admin })
  try {
    const { sClient } = await import('../helpers/openssl.js')
    const sess = path.join(dir, 's.pem')
    assert.equal((await sClient({ port, tls: '1.2', sessOut: sess, extra: ['-no_ticket'] })).reused, false)
    for (let i = 0; i < 8; i++) {
      const again = await sClient({ port, tls: '1.2', sessIn: sess, extra: ['-no_ticket'] })
      assert.equal(again.reused, true, again.output)
    }
    assert.equal(await node.metric('tlsfleet_workers', { state: 'listening' }), 2)
  } finally {
    await node.stop()
  }
})

test('--idle-timeout closes a proxied connection that carries no traffic, and traffic keeps it open', async () => {
  const dir = tempDir()
  const backend = await startRecordingBackend()
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`,
    '--cert', makeCertificate(dir, 'n', ['localhost']), '--idle-timeout', '1'], { adminPort: admin })
  try {
    const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false })
    await new Promise<void>((resolve) => socket.once('secureConnect', resolve))
    const opened = Date.now()
    socket.on('data', () => {})
    // Traffic every 400 ms for 2 s: longer than the idle timeout, but never idle that long.
    for (let i = 0; i < 5; i++) {
      socket.write(`ping${i}`)
      await new Promise((resolve) => setTimeout(resolve, 400))
    }
    assert.equal(socket.destroyed, false, 'an active connection was cut by the idle timeout')
    await new Promise<void>((resolve) => socket.once('close', () => resolve()))
    const idleFor = Date.now() - opened - 2000
    assert.ok(idleFor >= 500 && idleFor < 4000, `closed ${idleFor} ms after the last traffic, expected about 1000`)
  } finally {
    await node.stop()
    await backend.close()
  }
})

test('--connect-timeout: a backend that never accepts closes the client after the timeout (connect_timeout); a refused backend closes it at once (connect_failed)', async () => {
  const dir = tempDir()
  // A backend whose accept queue is full and whose process never accepts: the kernel drops
  // further SYNs, so a connect hangs until tlsfleet gives up. Bounded: the child ends by itself.
  const stalled = spawn(process.execPath, ['-e', `
    const s = require('node:net').createServer()
    s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(s.address().port + '\\n')
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000)
      process.exit(0)
    })`], { stdio: ['ignore', 'pipe', 'inherit'] })
  const fillers: net.Socket[] = []
  const [port, admin, refusedPort] = await freePorts(3) as [number, number, number]
  const cert = makeCertificate(dir, 'n', ['localhost'])
  try {
    const backendPort = await new Promise<number>((resolve) => stalled.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))))
    for (let i = 0; i < 3; i++) {
      const filler = net.connect(backendPort, '127.0.0.1')
      filler.on('error', () => {})
      fillers.push(filler)
    }
    await new Promise((resolve) => setTimeout(resolve, 300))
    const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backendPort}`,
      '--cert', cert, '--connect-timeout', '0.5'], { adminPort: admin })
    try {
      const closedAfter = await tlsConnectionLifetime(port)
      assert.ok(closedAfter >= 400 && closedAfter < 3000, `closed ${closedAfter} ms after the handshake, expected about 500`)
      await eventually(async () => await node.metric('tlsfleet_backend_errors_total', { reason: 'connect_timeout' }) === 1, 5000, 'connect_timeout counted')
      assert.equal(await node.metric('tlsfleet_backend_errors_total', { reason: 'connect_failed' }), 0)
    } finally {
      await node.stop()
    }

    const refused = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${refusedPort}`,
      '--cert', cert, '--connect-timeout', '5'], { adminPort: admin })
    try {
      const closedAfter = await tlsConnectionLifetime(port)
      assert.ok(closedAfter < 2000, `closed ${closedAfter} ms after the handshake, expected at once`)
      await eventually(async () => await refused.metric('tlsfleet_backend_errors_total', { reason: 'connect_failed' }) === 1, 5000, 'connect_failed counted')
      assert.equal(await refused.metric('tlsfleet_backend_errors_total', { reason: 'connect_timeout' }), 0)
      // Every connection fails while the backend is down: counted each, logged once (was a line per connection).
      for (let i = 0; i < 3; i++) await tlsConnectionLifetime(port)
      await eventually(async () => await refused.metric('tlsfleet_backend_errors_total', { reason: 'connect_failed' }) === 4, 5000, 'four connect_failed counted')
      const failedLines = refused.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('backend connection failed'))
      assert.equal(failedLines.length, 1, JSON.stringify(failedLines))
      assert.equal(failedLines[0]?.reason, 'connect_failed')
    } finally {
      await refused.stop()
    }
  } finally {
    for (const filler of fillers) filler.destroy()
    stalled.kill('SIGKILL')
  }
})

test('--fin-timeout: a half-closed connection whose backend never answers nor closes is closed after it, not after --idle-timeout', async () => {
  const dir = tempDir()
  // A backend that reads, never answers and never closes its side (allowHalfOpen).
  const held = new Set<net.Socket>()
  const silent = net.createServer({ allowHalfOpen: true }, (socket) => { held.add(socket); socket.on('data', () => {}); socket.on('error', () => {}) })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${(silent.address() as net.AddressInfo).port}`,
    '--cert', makeCertificate(dir, 'n', ['localhost']), '--idle-timeout', '300', '--fin-timeout', '1'], { adminPort: admin })
  try {
    const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, allowHalfOpen: true } as tls.ConnectionOptions)
    socket.on('error', () => {})
    await new Promise<void>((resolve) => socket.once('secureConnect', resolve))
    socket.write('request')
    await eventually(() => held.size === 1, 5000, 'the backend connection')
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())))
    const ended = Date.now()
    socket.end() // half-close: the backend gets our end and never answers
    const after = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 10_000))])
    assert.notEqual(after, -1, 'the half-closed connection was still open 10 s later (held for --idle-timeout)')
    assert.ok(after - ended >= 900 && after - ended < 4000, `closed ${after - ended} ms after the half-close, expected about 1 s`)
  } finally {
    await node.stop()
    for (const s of held) s.destroy()
    silent.close()
  }
})

/** Milliseconds from a completed TLS handshake to the server closing the connection. */
async function tlsConnectionLifetime (port: number): Promise<number> {
  const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false })
  socket.on('error', () => {})
  socket.on('data', () => {})
  await new Promise<void>((resolve) => socket.once('secureConnect', resolve))
  const secured = Date.now()
  await new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return Date.now() - secured
}

test('Ctrl-C on `npm start` (SIGINT to the launcher and the node, which the launcher passes on): one graceful stop, status 0; a second SIGTERM a second later forces the exit', async () => {
  const dir = tempDir()
  const [port, admin] = await freePorts(2) as [number, number]
  // The launcher `npm start` runs, in a process group of its own, as a terminal's foreground job.
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'scripts', 'supported-node.mjs'), CLI, 'node', '--log-format', 'json', '--workers', '1',
    '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${admin}`, '--cert', makeCertificate(dir, 'n', ['localhost']), '--state-dir', path.join(dir, 'state')],
  { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  try {
    await eventually(() => out.includes('tlsfleet node ready'), 30_000, `the node ready:\n${out}`)
    process.kill(-(child.pid as number), 'SIGINT')
    assert.equal(await exited, 0, out)
    assert.match(out, /"msg":"stopped"/)
    assert.doesNotMatch(out, /second SIGINT/)
  } finally {
    try { process.kill(-(child.pid as number), 'SIGKILL') } catch { /* gone */ }
  }

  // A real second request: a connection holds the node in its grace period, the operator insists.
  const backend = await startRecordingBackend()
  const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`, '--cert', makeCertificate(dir, 'm', ['localhost']),
    '--grace-period', '30'], { adminPort: admin })
  const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false })
  socket.on('error', () => {})
  try {
    await new Promise<void>((resolve) => socket.once('secureConnect', resolve))
    const done = new Promise<number | null>((resolve) => node.process.once('exit', (code) => resolve(code)))
    node.process.kill('SIGTERM')
    node.process.kill('SIGTERM') // passed on by a parent: the same request
    await node.waitForLog((l) => l.msg === 'shutting down', 5000)
    await new Promise((resolve) => setTimeout(resolve, 1200))
    assert.equal(node.process.exitCode, null, 'a repeated signal forced the exit')
    node.process.kill('SIGTERM')
    assert.equal(await done, 1)
    assert.ok(node.logs.some((l) => l.msg === 'second SIGTERM, exiting' && l.level === 50), node.diagnosis())
  } finally {
    socket.destroy()
    await node.stop()
    await backend.close()
  }
})
