import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { after, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { CLI, runNodeToExit, startNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

// --state-dir is handed to --user (nobody, as in privilege-drop.test.ts), and every later start
// as root reads and writes files in it: links nobody plants there must not make root read,
// serve or overwrite files elsewhere. Started as root, as the tests run.
const NOBODY = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim())
const dir = tempDir()
fs.chmodSync(dir, 0o755)
const servers: http.Server[] = []
after(() => { for (const server of servers) server.close() })

/** Files only root may read, as a link in the state dir would aim at. */
function rootOnly (name: string, text: string): string {
  const file = path.join(dir, name)
  fs.writeFileSync(file, text, { mode: 0o600 })
  return file
}

/** What nobody can do in the directory it was handed: replace a name with a link of its own. */
function plantLink (stateDir: string, name: string, target: string): void {
  fs.rmSync(path.join(stateDir, name), { force: true })
  fs.symlinkSync(target, path.join(stateDir, name))
  fs.lchownSync(path.join(stateDir, name), NOBODY, NOBODY)
}

test('links the node\'s user plants in --state-dir: the next start as root refuses each by name and leaves its target alone', async () => {
  const stateDir = path.join(dir, 'state')
  const secret = writeFarmSecret(dir)
  const [port, admin, sync] = await freePorts(3) as [number, number, number]
  const args = ['--workers', '1', '--listen', `127.0.0.1:${port}`, '--user', 'nobody', '--state-dir', stateDir, '--sync-listen', `127.0.0.1:${sync}`, '--sync-secret-file', secret]
  // First start: self-signed.pem, admin.token and the sync replay state made, then handed to nobody.
  const first = await startNode(args, { adminPort: admin })
  await first.stop()
  assert.equal(fs.statSync(stateDir).uid, NOBODY, 'the state dir was handed to --user')
  const replay = fs.readdirSync(stateDir).find((name) => name.startsWith('sync-replay-')) as string
  assert.ok(replay !== undefined)

  const victimToken = rootOnly('victim.token', `${'r'.repeat(48)}\n`)
  const victimKey = makeCertificate(dir, 'victim', ['secret.test'])
  const victimData = rootOnly('victim.data', 'root-only data\n')
  const before = { token: fs.readFileSync(victimToken, 'utf8'), key: fs.readFileSync(victimKey, 'utf8'), data: fs.readFileSync(victimData, 'utf8') }
  plantLink(stateDir, 'admin.token', victimToken)
  plantLink(stateDir, 'self-signed.pem', victimKey)
  plantLink(stateDir, replay, victimData)

  const run = async (): Promise<{ code: number | null; stderr: string }> => await runNodeToExit([...args, '--admin-listen', `127.0.0.1:${admin}`], { timeoutMs: 15_000 })
  // Read first: the generated admin token (it would have become the admin API's token).
  const token = await run()
  assert.equal(token.code, 2, token.stderr)
  assert.match(token.stderr, /generated admin token: token file ".*state\/admin\.token": cannot read: a symbolic link.*\(TLSFLEET_ERR_ADMIN_TOKEN\)/)
  fs.rmSync(path.join(stateDir, 'admin.token'))
  // Then the self-signed certificate (root would have served the key the link points to).
  const cert = await run()
  assert.equal(cert.code, 2, cert.stderr)
  assert.match(cert.stderr, /certificate ".*state\/self-signed\.pem": the self-signed certificate in --state-dir cannot be read: a symbolic link.*\(TLSFLEET_ERR_CERTIFICATE\)/)
  fs.rmSync(path.join(stateDir, 'self-signed.pem'))
  // Then the sync replay state (root would have written its JSON through the link).
  const state = await run()
  assert.equal(state.code, 3, state.stderr)
  assert.match(state.stderr, new RegExp(`sync replay state ".*${replay.replace(/\./g, '\\.')}": a symbolic link.*\\(TLSFLEET_ERR_SYNC_STATE\\)`))

  assert.deepEqual({ token: fs.readFileSync(victimToken, 'utf8'), key: fs.readFileSync(victimKey, 'utf8'), data: fs.readFileSync(victimData, 'utf8') }, before, 'no file a link pointed to was read into the node or written')
  for (const file of [victimToken, victimKey, victimData]) assert.equal(fs.statSync(file).uid, 0, `${file} still root's`)
})

test('tlsfleet drain as root does not follow an admin.token link: no root-only line is sent as the token', async () => {
  const stateDir = path.join(dir, 'drain-state')
  fs.mkdirSync(stateDir, { mode: 0o700 })
  fs.chownSync(stateDir, NOBODY, NOBODY)
  const victim = rootOnly('drain-victim', `${'s'.repeat(40)}\n`)
  plantLink(stateDir, 'admin.token', victim)
  // A stand-in admin API on loopback that records what it is sent.
  const seen: string[] = []
  const server = http.createServer((req, res) => { seen.push(req.headers.authorization ?? '(none)'); res.setHeader('content-type', 'application/json'); res.end('{}') })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const drain = spawn(process.execPath, [CLI, 'drain', '--admin', `http://127.0.0.1:${port}`, '--state-dir', stateDir], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  drain.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>((resolve) => drain.once('exit', resolve))
  assert.equal(code, 2, stderr)
  assert.match(stderr, /--state-dir ".*drain-state": cannot read the node's admin token ".*admin\.token": a symbolic link.*\(TLSFLEET_ERR_ADMIN_TOKEN\)/)
  assert.deepEqual(seen, [], 'nothing was sent to the admin API')
})

test('a --state-dir others may write to, or of another user, is refused at start; a missing one is made 0700', async () => {
  const [port, admin] = await freePorts(2) as [number, number]
  const base = ['--workers', '1', '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${admin}`]
  const open = path.join(dir, 'open-state')
  fs.mkdirSync(open)
  fs.chmodSync(open, 0o1777)
  const refused = await runNodeToExit([...base, '--state-dir', open], { timeoutMs: 15_000 })
  assert.equal(refused.code, 2, refused.stderr)
  assert.match(refused.stderr, /--state-dir ".*open-state": writable by group or others \(mode 01777, owner uid 0\).*run chmod 700 on it \(TLSFLEET_ERR_CONFIG\)/)
  assert.deepEqual(fs.readdirSync(open), [], 'nothing written into it')
  // Pre-made by another user (the default .tlsfleet under a shared cwd such as /tmp).
  const foreign = path.join(dir, 'foreign-state')
  fs.mkdirSync(foreign, { mode: 0o755 })
  fs.chownSync(foreign, NOBODY, NOBODY)
  const theirs = await runNodeToExit([...base, '--state-dir', foreign], { timeoutMs: 15_000 })
  assert.equal(theirs.code, 2, theirs.stderr)
  assert.match(theirs.stderr, new RegExp(`--state-dir ".*foreign-state": owned by uid ${NOBODY} \\(mode 0755\\), not by root.*chown.*\\(TLSFLEET_ERR_CONFIG\\)`))

  const fresh = path.join(dir, 'fresh', 'state')
  const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--state-dir', fresh], { adminPort: admin })
  await node.stop()
  assert.equal(fs.statSync(fresh).mode & 0o777, 0o700)
  assert.ok(!node.logs.some((l) => String(l.msg).startsWith('a directory above --state-dir')), 'warned about safe parents')

  // Safe itself, under a directory anyone may write to (not sticky): it could be renamed away
  // and replaced. Warned about, naming that directory.
  const shared = path.join(dir, 'shared')
  fs.mkdirSync(shared)
  fs.chmodSync(shared, 0o777)
  const under = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--state-dir', path.join(shared, 'state')], { adminPort: admin })
  await under.stop()
  const warning = under.logs.find((l) => String(l.msg).startsWith('a directory above --state-dir lets another user replace it'))
  assert.equal(warning?.ancestor, `${shared} (mode 0777, owner uid 0): writable by group or others`)
})
