import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, test } from 'node:test'
import { runCli } from '../helpers/agent.js'
import { tempDir } from '../helpers/certs.js'
import { freePorts } from '../helpers/ports.js'

/**
 * The admin token (generated in --state-dir, or a --token-file) goes only to the node: another
 * local user that listens on a loopback admin port (taken while the node was down) must not be
 * handed it by `tlsfleet status` or `drain` run as root. Real processes of another uid (nobody), real
 * sockets on loopback; run as root, as the tests are (README).
 */

const NOBODY = 65534
const listeners: ChildProcess[] = []

after(() => { for (const child of listeners) child.kill('SIGKILL') })

/** A process of `uid` listening on 127.0.0.1:port that answers {} and writes each request's Authorization header to `log`. */
async function listenAs (uid: number, port: number, log: string): Promise<void> {
  const code = `require('http').createServer((q, s) => { require('fs').appendFileSync(${JSON.stringify(log)}, String(q.headers.authorization) + '\\n'); s.end('{}') }).listen(${port}, '127.0.0.1', () => console.log('up'))`
  const child = spawn(process.execPath, ['-e', code], { uid, gid: NOBODY, stdio: ['ignore', 'pipe', 'inherit'] })
  listeners.push(child)
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve())
    child.once('exit', (c) => reject(new Error(`listener exited (${String(c)})`)))
  })
}

function stateDirWithToken (owner: number): { dir: string; token: string; log: string } {
  const dir = tempDir()
  fs.chmodSync(dir, 0o755)
  const token = 'a'.repeat(16) + Math.random().toString(16).slice(2)
  const file = path.join(dir, 'admin.token')
  fs.writeFileSync(file, `${token}\n`, { mode: 0o600 })
  fs.chownSync(file, owner, owner)
  const log = path.join(dir, 'requests.log')
  fs.writeFileSync(log, '', { mode: 0o666 })
  fs.chmodSync(log, 0o666)
  return { dir, token, log }
}

test('a root-owned generated token is not sent to a listener of another user: status and drain refuse, naming the uid', async () => {
  const { dir, token, log } = stateDirWithToken(0)
  const [port] = await freePorts(1) as [number]
  await listenAs(NOBODY, port, log)
  for (const command of ['status', 'drain']) {
    const r = await runCli([command, '--admin', `127.0.0.1:${port}`, '--state-dir', dir, '--timeout', '2'])
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, new RegExp(`refused to send the node's admin token \\(${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/admin\\.token\\): the process listening there runs as uid ${NOBODY}, neither root nor the token file's owner \\(uid 0\\)`))
  }
  assert.ok(!fs.readFileSync(log, 'utf8').includes(token), 'the listener was sent the token')
})

test('the same for a --token-file the operator gave: refused to another user\'s listener on loopback', async () => {
  const { dir, token, log } = stateDirWithToken(0)
  const [port] = await freePorts(1) as [number]
  await listenAs(NOBODY, port, log)
  const r = await runCli(['status', '--admin', `http://localhost:${port}`, '--token-file', path.join(dir, 'admin.token'), '--timeout', '2'])
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, /refused to send the node's admin token \(.*admin\.token\): the process listening there runs as uid 65534/)
  assert.ok(!fs.readFileSync(log, 'utf8').includes(token), 'the listener was sent the token')
})

test('the token file\'s owner listening (a node run as that user) is sent the token', async () => {
  const { dir, token, log } = stateDirWithToken(NOBODY)
  const [port] = await freePorts(1) as [number]
  await listenAs(NOBODY, port, log)
  // The listener answers {} (not a node): the CLI says so, after sending the token.
  const r = await runCli(['drain', '--admin', `127.0.0.1:${port}`, '--state-dir', dir, '--timeout', '2'])
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, /not a tlsfleet node's answer/)
  assert.equal(fs.readFileSync(log, 'utf8'), `Bearer ${token}\n`)
})
