import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { agentSays, runCli, type CliResult } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { pollUntil, startHaproxy, TCP_DEFAULTS, type RunningHaproxy } from '../helpers/haproxy.js'
import { startNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

/**
 * A companion refuses a local HAProxy that is not set up for it, with one line naming what to
 * fix and exit 2, and changes nothing (the ring HAProxy holds stays as it was): no Runtime API
 * given, a wrong key file path, a socket below level admin, no tls-ticket-keys on the bind
 * line, keys of another size. `haproxy-keys` refuses its own bad input the same way. An
 * HAProxy that is not up yet is no refusal: the node waits for it, down.
 */

let dir: string
let cert: string
let secret: string
let keyFile: string
let wideKeyFile: string
let withKeys: RunningHaproxy
let withoutKeys: RunningHaproxy
let operatorSocket: string

async function companion (socket: string, keys: string): Promise<CliResult> {
  const [admin] = await freePorts(1) as [number]
  return await runCli(['node', '--terminator', 'haproxy', '--terminator-socket', socket, '--terminator-keys', keys, '--sync-secret-file', secret, '--admin-listen', `127.0.0.1:${admin}`, '--log-format', 'json'])
}

before(async () => {
  dir = tempDir()
  cert = makeCertificate(dir, 'site', ['localhost'])
  secret = writeFarmSecret(dir)
  keyFile = path.join(dir, 'tls-ticket-keys')
  const made = await runCli(['haproxy-keys', '--sync-secret-file', secret, '--out', keyFile])
  assert.equal(made.code, 0, made.stderr)
  assert.match(made.stdout, new RegExp(`^wrote ${keyFile}: the farm's ticket keys for epochs \\d+, \\d+ \\(encrypting\\) and \\d+; next rotation at `))
  assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600)
  // AES-256 keys (80 bytes a line), which HAProxy accepts and the farm does not derive.
  wideKeyFile = path.join(dir, 'wide-keys')
  fs.writeFileSync(wideKeyFile, [1, 2, 3].map(() => crypto.randomBytes(80).toString('base64')).join('\n') + '\n', { mode: 0o600 })
  withKeys = await startHaproxy(({ ports, dir: haproxyDir }) => {
    operatorSocket = path.join(haproxyDir, 'operator.sock')
    return `global
  stats socket ${operatorSocket} mode 600 level operator
${TCP_DEFAULTS}
frontend tls_in
  bind 127.0.0.1:${ports[0] as number} ssl crt ${cert} tls-ticket-keys ${keyFile}
  bind 127.0.0.1:${ports[1] as number} ssl crt ${cert} tls-ticket-keys ${wideKeyFile}
  default_backend app
backend app
  server app 127.0.0.1:1
`
  }, { ports: 2 })
  withoutKeys = await startHaproxy(({ ports }) => `${TCP_DEFAULTS}
frontend tls_in
  bind 127.0.0.1:${ports[0] as number} ssl crt ${cert}
  default_backend app
backend app
  server app 127.0.0.1:1
`, { ports: 1 })
})

after(async () => {
  await withKeys?.stop()
  await withoutKeys?.stop()
})

/** The refusal: exit 2, one stderr line with the message and its code, and the ring untouched. */
async function refused (result: CliResult, message: RegExp, ringBefore: string[]): Promise<void> {
  assert.equal(result.code, 2, result.stdout + result.stderr)
  assert.match(result.stderr, message)
  assert.match(result.stderr, /\(TLSFLEET_ERR_TERMINATOR\)\n$/)
  assert.deepEqual(await withKeys.api.showTlsKeys(keyFile), ringBefore, 'a refused start changed the ring')
}

test('a companion without --terminator-socket is refused as a conflict, before anything is built or written', async () => {
  const [admin] = await freePorts(1) as [number]
  const stateDir = path.join(dir, 'no-socket-state')
  for (const extra of [[], ['--terminator-keys', keyFile, '--sync-secret-file', secret]]) {
    const result = await runCli(['node', '--terminator', 'haproxy', ...extra, '--state-dir', stateDir, '--admin-listen', `127.0.0.1:${admin}`, '--log-format', 'json'])
    assert.equal(result.code, 2, result.stdout + result.stderr)
    assert.match(result.stderr, /^tlsfleet: --terminator haproxy needs --terminator-socket PATH\|HOST:PORT: .* \(TLSFLEET_ERR_CONFIG_CONFLICT\)\n$/)
  }
  assert.equal(fs.existsSync(stateDir), false, 'a refused start wrote into --state-dir')
})

test('a wrong --terminator-keys path is refused, naming the file the bind line uses', async () => {
  const ring = await withKeys.api.showTlsKeys(keyFile)
  const wrong = path.join(dir, 'no-such-keys')
  await refused(await companion(withKeys.socketPath, wrong), new RegExp(`--terminator-keys ${wrong}: no bind line of the local HAProxy uses this tls-ticket-keys file; it uses ${keyFile}, ${wideKeyFile}`), ring)
})

test('a Runtime API socket below level admin is refused, saying which level it has', async () => {
  const ring = await withKeys.api.showTlsKeys(keyFile)
  await refused(await companion(operatorSocket, keyFile), new RegExp(`--terminator-socket ${operatorSocket} answers at level "operator": tlsfleet needs level admin`), ring)
})

test('an HAProxy with no tls-ticket-keys on its bind line is refused, saying what to add', async () => {
  const ring = await withKeys.api.showTlsKeys(keyFile)
  await refused(await companion(withoutKeys.socketPath, keyFile), new RegExp(`has no bind line with tls-ticket-keys: add "tls-ticket-keys ${keyFile}" to its "bind \\.\\.\\. ssl crt \\.\\.\\." line`), ring)
})

test('a key file of 80-byte keys is refused: the farm derives 48-byte keys', async () => {
  const ring = await withKeys.api.showTlsKeys(wideKeyFile)
  const result = await companion(withKeys.socketPath, wideKeyFile)
  assert.equal(result.code, 2, result.stderr)
  assert.match(result.stderr, /holds 80-byte keys; the farm's ticket keys are 48-byte \(AES-128\) keys: rewrite the file with tlsfleet haproxy-keys/)
  assert.deepEqual(await withKeys.api.showTlsKeys(wideKeyFile), ring)
})

test('haproxy-keys refuses a missing or unsafe farm secret and an unwritable --out, and writes nothing', async () => {
  const out = path.join(dir, 'never-written')
  const missing = await runCli(['haproxy-keys', '--out', out])
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /--sync-secret-file is required/)
  const open = path.join(dir, 'open.key')
  fs.writeFileSync(open, crypto.randomBytes(48).toString('base64'), { mode: 0o644 })
  fs.chmodSync(open, 0o644)
  const unsafe = await runCli(['haproxy-keys', '--sync-secret-file', open, '--out', out])
  assert.equal(unsafe.code, 2)
  assert.match(unsafe.stderr, /readable by group or others .*chmod 600 .*\(TLSFLEET_ERR_FARM_SECRET\)/)
  const badRotation = await runCli(['haproxy-keys', '--sync-secret-file', secret, '--ticket-rotation', '0', '--out', out])
  assert.equal(badRotation.code, 2)
  assert.match(badRotation.stderr, /--ticket-rotation: "0" is not valid for "ticket-rotation": expected an integer number of seconds from 1 to 604800/)
  const nowhere = path.join(dir, 'no-such-dir', 'keys')
  const unwritable = await runCli(['haproxy-keys', '--sync-secret-file', secret, '--out', nowhere])
  assert.equal(unwritable.code, 2)
  assert.match(unwritable.stderr, new RegExp(`--out ${nowhere}: cannot write the key file: .*\\(TLSFLEET_ERR_TERMINATOR\\)`))
  assert.equal(fs.existsSync(out), false)
})

test('haproxy-keys reads the node\'s YAML file (--config or TLSFLEET_CONFIG): the key file follows the farm\'s rotation, not the default', async () => {
  const yaml = path.join(dir, 'companion.yaml')
  fs.writeFileSync(yaml, `ticket-rotation: 30\nsync-secret-file:\n  - ${secret}\n`)
  const epochNow = (): number => Math.floor(Date.now() / 1000 / 30)
  for (const [args, env] of [[['-c', yaml], {}], [[], { TLSFLEET_CONFIG: yaml }]] as const) {
    const out = path.join(dir, `keys-from-yaml-${args.length}`)
    const before = epochNow()
    const made = await runCli(['haproxy-keys', ...args, '--out', out], 15_000, env)
    assert.equal(made.code, 0, made.stderr)
    const epoch = Number(/epochs \d+, (\d+) \(encrypting\)/.exec(made.stdout)?.[1])
    assert.ok(epoch >= before && epoch <= epochNow(), `epoch ${epoch} is not the 30 s rotation's (${before}): ${made.stdout}`)
    assert.equal(fs.statSync(out).size > 0, true)
  }
})

test('a local HAProxy that is not up yet is no refusal: the node starts down and comes up once it answers', async () => {
  const haproxyDir = path.join(dir, 'late')
  fs.mkdirSync(haproxyDir)
  const [tls, agent, admin] = await freePorts(3) as [number, number, number]
  const socket = path.join(haproxyDir, 'admin.sock')
  const node = await startNode(['--terminator', 'haproxy', '--terminator-socket', socket, '--terminator-keys', keyFile, '--sync-secret-file', secret, '--agent-listen', `127.0.0.1:${agent}`], { adminPort: admin })
  let late: RunningHaproxy | undefined
  try {
    assert.match(await agentSays(agent), /^ready down 100% #local haproxy unreachable at /)
    late = await startHaproxy(`${TCP_DEFAULTS}
frontend tls_in
  bind 127.0.0.1:${tls} ssl crt ${cert} tls-ticket-keys ${keyFile}
  default_backend app
backend app
  server app 127.0.0.1:1
`, { dir: haproxyDir, ports: 0 })
    assert.equal(await pollUntil('the agent to say up', async () => { const line = await agentSays(agent); return /^ready up/.test(line) ? line : undefined }), 'ready up 100%\n')
  } finally {
    await node.stop()
    await late?.stop()
  }
})

test('a local HAProxy that goes away while the start checks its setup (a restart at that moment) is no refusal either: the node starts down', async () => {
  const goneDir = path.join(dir, 'gone')
  fs.mkdirSync(goneDir)
  const socket = path.join(goneDir, 'admin.sock')
  // Answers `show info` as HAProxy does, then closes on the setup check's first command.
  const going = net.createServer((c) => {
    c.on('error', () => {})
    c.once('data', (line: Buffer) => { if (line.toString().startsWith('show info')) c.end('Name: HAProxy\nVersion: 2.6.12\nPid: 4242\nStart_time_sec: 1\n\n'); else c.destroy() })
  })
  await new Promise<void>((resolve) => going.listen(socket, resolve))
  const [agent, admin] = await freePorts(2) as [number, number]
  try {
    const node = await startNode(['--terminator', 'haproxy', '--terminator-socket', socket, '--terminator-keys', keyFile, '--sync-secret-file', secret, '--agent-listen', `127.0.0.1:${agent}`], { adminPort: admin })
    try {
      const warned = await node.waitForLog((l) => l.msg === 'the local haproxy went away while its setup was checked; the agent says down until it answers and passes the check', 5000)
      assert.equal(warned.level, 40)
      assert.equal(await agentSays(agent), `ready down 100% #local haproxy unreachable at ${socket}\n`)
    } finally {
      await node.stop()
    }
  } finally {
    going.close()
  }
})

test('a Runtime API socket that accepts and never replies: the agent and status say no reply came within the deadline, and the ring is unknown, not wrong', async () => {
  const wedgedDir = path.join(dir, 'wedged')
  fs.mkdirSync(wedgedDir)
  const socket = path.join(wedgedDir, 'admin.sock')
  const silent = net.createServer({ pauseOnConnect: true }, (c) => { c.on('error', () => {}) })
  await new Promise<void>((resolve) => silent.listen(socket, resolve))
  const [agent, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--terminator', 'haproxy', '--terminator-socket', socket, '--terminator-keys', keyFile, '--sync-secret-file', secret, '--agent-listen', `127.0.0.1:${agent}`], { adminPort: admin })
  try {
    const reason = `local haproxy at ${socket} does not answer: no reply within 2000 ms`
    assert.equal(await agentSays(agent), `ready down 100% #${reason}\n`)
    const status = await runCli(['status', '--admin', node.adminUrl])
    assert.equal(status.code, 0, status.stderr)
    assert.ok(status.stdout.includes(`not serving (${reason})`), status.stdout)
    assert.match(status.stdout, /ticket keys\s+\S+tls-ticket-keys: ring unknown \(not read from the local haproxy\)/)
    assert.doesNotMatch(status.stdout, /unreachable|NOT the farm's ring/)
    assert.match(status.stdout, /^certificates\s+the local HAProxy serves its own certificates: ask it/m)
  } finally {
    await node.stop()
    silent.close()
  }
})

test('a second ticket key ring in the local HAProxy: the node serves, warns once naming the other file and id, and status shows it', async () => {
  const [agent, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--terminator', 'haproxy', '--terminator-socket', withKeys.socketPath, '--terminator-keys', keyFile, '--sync-secret-file', secret, '--agent-listen', `127.0.0.1:${agent}`], { adminPort: admin })
  try {
    assert.equal(await pollUntil('the agent to say up', async () => { const line = await agentSays(agent); return /^ready up/.test(line) ? line : undefined }), 'ready up 100%\n')
    const [other] = (await withKeys.api.showTlsKeyRefs()).filter((r) => r.file === wideKeyFile)
    assert.ok(other !== undefined)
    const warning = `the local HAProxy holds ticket key rings tlsfleet does not manage: ${other.id} (${wideKeyFile}); tickets from those binds resume on no other node: every "bind ... ssl" line must use "tls-ticket-keys ${keyFile}"`
    await node.waitForLog((l) => l.msg === warning)
    const status = await runCli(['status', '--admin', node.adminUrl])
    assert.equal(status.code, 0, status.stderr)
    assert.ok(status.stdout.includes(`warning: ${warning}`), status.stdout)
    // Once per HAProxy process, not at every poll.
    await new Promise((resolve) => setTimeout(resolve, 2500))
    assert.equal(node.logs.filter((l) => l.msg === warning).length, 1)
  } finally {
    await node.stop()
  }
})
