import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { childPids, CLI, eventually, runNodeToExit, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { freePorts } from '../helpers/ports.js'

// --user nobody, started as root (as the tests run): the node binds a port below 1024, then
// primary and workers run as nobody; it still serves, reloads certificates on SIGHUP (files
// readable by nobody) and replaces a dead worker, which takes over the listener the primary kept.
const NOBODY = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim())
const dir = tempDir()
fs.chmodSync(dir, 0o755)
const cert = makeCertificate(dir, 'served', ['first.test'])
fs.chownSync(cert, NOBODY, NOBODY)
let node: RunningNode
let port: number

/** A port below 1024 free on loopback (binding it needs root, as for 443). */
async function privilegedPort (): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = 600 + Math.floor(Math.random() * 400)
    const free = await new Promise<boolean>((resolve) => {
      const probe = net.createServer()
      probe.once('error', () => resolve(false))
      probe.listen({ port: candidate, host: '127.0.0.1', exclusive: true }, () => probe.close(() => resolve(true)))
    })
    if (free) return candidate
  }
  throw new Error('no free port below 1024 on 127.0.0.1')
}

before(async () => {
  port = await privilegedPort()
  const [admin] = await freePorts(1) as [number]
  node = await startNode(['--workers', '2', '--listen', `127.0.0.1:${port}`, '--cert', cert, '--user', 'nobody', '--state-dir', path.join(dir, 'state')], { adminPort: admin })
})

after(async () => { await node?.stop() })

function userOf (pid: number): string {
  return execFileSync('ps', ['-o', 'user=', '-p', String(pid)], { encoding: 'utf8' }).trim()
}

/** Real, effective, saved and file-system uid from /proc: all four must be nobody's. */
function uids (pid: number): number[] {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:')) ?? ''
  return line.split(/\s+/).slice(1).map(Number)
}

test('ps shows the primary and every worker running as nobody, for good', async () => {
  const primary = node.process.pid as number
  const workers = childPids(primary)
  assert.equal(workers.length, 2)
  for (const pid of [primary, ...workers]) {
    assert.equal(userOf(pid), 'nobody', `pid ${pid}`)
    assert.deepEqual(uids(pid), [NOBODY, NOBODY, NOBODY, NOBODY], `pid ${pid} could get root back`)
  }
  assert.equal((await sClient({ port, servername: 'first.test', tls: '1.3' })).protocol, 'TLSv1.3')
})

test('SIGHUP reloads certificates readable by nobody', async () => {
  // Rewritten in place (copyFile would also copy the owner: root).
  fs.writeFileSync(cert, fs.readFileSync(makeCertificate(dir, 'fresh', ['second.test'])))
  node.process.kill('SIGHUP')
  await node.waitForLog((l) => l.msg === 'certificates reloaded' && l.name === 'primary', 10_000)
  await eventually(async () => /second\.test/.test((await sClient({ port, tls: '1.3' })).subject ?? ''), 10_000, 'the reloaded certificate served')
})

test('a dead worker is replaced by one running as nobody that takes over its listener', async () => {
  const primary = node.process.pid as number
  const [victim] = childPids(primary)
  process.kill(victim as number, 'SIGKILL')
  await eventually(() => { const now = childPids(primary); return now.length === 2 && !now.includes(victim as number) }, 10_000, 'a replacement worker')
  await eventually(async () => await node.metric('tlsfleet_workers', { state: 'listening' }) === 2, 10_000, 'the replacement listening')
  const replacement = childPids(primary).find((pid) => pid !== victim) as number
  assert.equal(userOf(replacement), 'nobody')
  assert.ok(!node.logs.some((l) => l.msg === 'worker cannot listen'), 'the replacement tried to bind as nobody')
  // Every connection is served, whichever of the two listeners the kernel picks.
  for (let i = 0; i < 8; i++) assert.equal((await sClient({ port, tls: '1.3' })).protocol, 'TLSv1.3', `connection ${i}`)
})

/** The SHA-256 fingerprint of the certificate a node serves on `port`. */
function servedFingerprint (port: number): string {
  const pem = execFileSync('sh', ['-c', `openssl s_client -connect 127.0.0.1:${port} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256`], { encoding: 'utf8' })
  return pem.trim()
}

function statusLine (pid: number, key: string): string {
  return fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${key}:`))?.slice(key.length + 1).trim() ?? ''
}

test('default certificate, --user and --group: the state files are the user\'s, SIGHUP keeps the key, drain as the user works', async () => {
  const DAEMON = Number(execFileSync('getent', ['group', 'daemon'], { encoding: 'utf8' }).split(':')[2])
  const p = await privilegedPort()
  const [admin, sync] = await freePorts(2) as [number, number]
  // A state dir and token left by an earlier start as root (what older versions made): handed over, token kept.
  const stateDir = path.join(dir, 'own-state')
  fs.mkdirSync(stateDir, { mode: 0o700 })
  const token = 'a'.repeat(64)
  fs.writeFileSync(path.join(stateDir, 'admin.token'), `${token}\n`, { mode: 0o600 })
  const secret = writeFarmSecret(dir)
  const second = await startNode(['--workers', '1', '--listen', `127.0.0.1:${p}`, '--user', 'nobody', '--group', 'daemon', '--state-dir', stateDir,
    '--sync-listen', `127.0.0.1:${sync}`, '--sync-secret-file', secret], { adminPort: admin })
  try {
    const primary = second.process.pid as number
    // self-signed.pem is handed to the user at the switch: no warning that the user cannot read it.
    assert.ok(!second.logs.some((l) => l.msg === 'these files are not readable by --user: certificate reloads (SIGHUP) will fail until they are'), second.diagnosis())
    // The farm secret is root's (0600): SIGHUP, run as the user, could not read it.
    const secretWarning = second.logs.find((l) => String(l.msg).startsWith('these farm secret files are not readable by --user'))
    assert.deepEqual(secretWarning?.files, [secret], second.diagnosis())
    // --group replaces the user's groups (nobody's own nogroup does not stay), as runuser -g does.
    for (const pid of [primary, ...childPids(primary)]) {
      assert.equal(statusLine(pid, 'Gid'), [DAEMON, DAEMON, DAEMON, DAEMON].join('\t'), `pid ${pid}`)
      assert.equal(statusLine(pid, 'Groups'), String(DAEMON), `pid ${pid}`)
    }
    const replay = fs.readdirSync(stateDir).find((name) => name.startsWith('sync-replay-'))
    assert.ok(replay !== undefined, 'the sync replay state was written')
    for (const [name, mode] of [['.', 0o700], ['admin.token', 0o600], ['self-signed.pem', 0o600], [replay, 0o600]] as const) {
      const stat = fs.statSync(path.join(stateDir, name))
      assert.deepEqual([stat.uid, stat.gid, stat.mode & 0o777], [NOBODY, DAEMON, mode], `${name} is the node user's`)
    }
    assert.equal(fs.readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim(), token, 'the existing token is kept')

    const before = servedFingerprint(p)
    assert.match(before, /sha256 Fingerprint=/i)
    second.process.kill('SIGHUP')
    await second.waitForLog((l) => (l.msg === 'certificates reloaded' || l.msg === 'certificate reload refused; keeping the current certificates') && l.name === 'primary', 20_000)
    assert.ok(!second.logs.some((l) => l.msg === 'certificate reload refused; keeping the current certificates'), second.diagnosis())
    assert.equal(servedFingerprint(p), before, 'the same self-signed certificate after SIGHUP, not a new key')
    assert.deepEqual(fs.readdirSync(stateDir).filter((name) => name.endsWith('.tmp')), [], 'no half-written certificate left')

    // The node's user drains it with the token the node generated (found through --state-dir).
    const drain = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, CLI, 'drain', '--admin', `http://127.0.0.1:${admin}`, '--state-dir', stateDir], { encoding: 'utf8', cwd: '/' })
    assert.equal(drain.status, 0, drain.stderr)
    await eventually(async () => ((await (await fetch(`${second.adminUrl}/v1/state`)).json()) as { state?: string }).state === 'drain', 5000, 'the node drained')
    // Anyone else is told why the token cannot be had, not sent on without one (a bare 401).
    const other = spawnSync('runuser', ['-u', 'daemon', '--', process.execPath, CLI, 'drain', '--admin', `http://127.0.0.1:${admin}`, '--state-dir', stateDir], { encoding: 'utf8', cwd: '/' })
    assert.equal(other.status, 2, other.stderr)
    assert.match(other.stderr, /--state-dir ".*own-state": cannot read the node's admin token ".*admin\.token": EACCES.*\(TLSFLEET_ERR_ADMIN_TOKEN\)/)
  } finally {
    await second.stop()
  }
})

test('--user that cannot be applied refuses the start', async () => {
  const [p, admin] = await freePorts(2) as [number, number]
  const base = ['--workers', '1', '--listen', `127.0.0.1:${p}`, '--admin-listen', `127.0.0.1:${admin}`, '--cert', cert]
  const unknown = await runNodeToExit([...base, '--user', 'no-such-user-here'])
  assert.equal(unknown.code, 2, unknown.stderr)
  assert.match(unknown.stderr, /--user "no-such-user-here": no such user on this machine \(TLSFLEET_ERR_CONFIG\)/)
  // Started as nobody, it cannot become anyone else: refused before anything is read or bound.
  const notRoot = await runNodeToExit([...base, '--user', 'root'], { uid: NOBODY })
  assert.equal(notRoot.code, 3, notRoot.stderr)
  assert.match(notRoot.stderr, /--user root: switching to another user needs root, and tlsfleet runs as uid \d+.*\(TLSFLEET_ERR_PRIVILEGES\)/)
  // A token file it may look at but not read (root's, 0600): the token refusal, not an unexpected error.
  const rootsToken = path.join(dir, 'roots-admin.token')
  fs.writeFileSync(rootsToken, 'x'.repeat(40), { mode: 0o600 })
  const unreadable = await runNodeToExit([...base, '--admin-token-file', rootsToken], { uid: NOBODY })
  assert.equal(unreadable.code, 2, unreadable.stderr)
  assert.match(unreadable.stderr, /token file ".*roots-admin\.token": cannot read: .*EACCES.*\(TLSFLEET_ERR_ADMIN_TOKEN\)/)
  // An OCSP directory the node could not write once it runs as nobody.
  const rootOnly = path.join(dir, 'ocsp-root-only')
  fs.mkdirSync(rootOnly, { mode: 0o755 })
  const ocsp = await runNodeToExit([...base, '--user', 'nobody', '--ocsp-dir', rootOnly])
  assert.equal(ocsp.code, 2, ocsp.stderr)
  assert.match(ocsp.stderr, /--ocsp-dir ".*ocsp-root-only": not writable by --user nobody/)
})
