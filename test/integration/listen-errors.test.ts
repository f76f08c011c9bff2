import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { writeFarmSecretFile } from '../../src/sync/farm-secret.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { CLI, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts, holdDefaultPorts } from '../helpers/ports.js'

// One node holds every kind of listener; a second node asks for one of the same addresses and
// must stop with one line naming the address and the option to change (exit status 3).
const dir = tempDir()
const cert = makeCertificate(dir, 'n', ['localhost'])
const secret = writeFarmSecretFile(`${dir}/farm.key`)
const DEFAULT_ADMIN_PORT = 8445
let first: RunningNode
let tls: number, agent: number, sync: number
let release: (() => void) | undefined

before(async () => {
  release = await holdDefaultPorts()
  ;[tls, agent, sync] = await freePorts(3) as [number, number, number]
  first = await startNode(['--workers', '1', '--listen', `127.0.0.1:${tls}`, '--cert', cert, '--agent-listen', `127.0.0.1:${agent}`,
    '--sync-listen', `127.0.0.1:${sync}`, '--sync-secret-file', secret, '--warm-join-timeout', '0'], { adminPort: DEFAULT_ADMIN_PORT })
})

after(async () => {
  await first?.stop()
  release?.()
})

/** Run a second node (no --admin-listen unless given: the default) and collect how it ends. */
async function second (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const child = spawn(process.execPath, [CLI, 'node', '--log-format', 'json', '--workers', '1', '--cert', cert, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let stderr = ''
  let stdout = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.once('exit', (c) => { clearTimeout(timer); resolve(c) })
  })
  return { code, stderr, stdout }
}

function assertOneLine (result: { code: number | null; stderr: string }, address: string, option: string): void {
  assert.equal(result.code, 3, result.stderr)
  const lines = result.stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`)
  assert.match(lines[0] as string, new RegExp(`^tlsfleet: ${address.replace(/\./g, '\\.')} is already in use by another process: stop that process or give another ${option} \\(TLSFLEET_ERR_ADDRESS_IN_USE\\)$`))
}

test('a second node with the same default admin port exits with one line naming the address and --admin-listen', async () => {
  const [otherTls] = await freePorts(1) as [number]
  assertOneLine(await second(['--listen', `127.0.0.1:${otherTls}`]), `127.0.0.1:${DEFAULT_ADMIN_PORT}`, '--admin-listen')
})

test('the same for the TLS listener (--listen), even though workers bind with SO_REUSEPORT', async () => {
  const [otherAdmin] = await freePorts(1) as [number]
  assertOneLine(await second(['--listen', `127.0.0.1:${tls}`, '--admin-listen', `127.0.0.1:${otherAdmin}`]), `127.0.0.1:${tls}`, '--listen')
})

test('the same for the agent (--agent-listen) and the sync (--sync-listen) listeners', async () => {
  const [otherTls, otherAdmin] = await freePorts(2) as [number, number]
  const base = ['--listen', `127.0.0.1:${otherTls}`, '--admin-listen', `127.0.0.1:${otherAdmin}`]
  assertOneLine(await second([...base, '--agent-listen', `127.0.0.1:${agent}`]), `127.0.0.1:${agent}`, '--agent-listen')
  assertOneLine(await second([...base, '--sync-listen', `127.0.0.1:${sync}`, '--sync-secret-file', secret]), `127.0.0.1:${sync}`, '--sync-listen')
})

test('a port held only by this machine\'s connections from it (no listener) is named as such, not as another process', async () => {
  const [otherTls, otherAdmin] = await freePorts(2) as [number, number]
  // A client connection to the first node's admin API, from an ephemeral port (as a load
  // test's, in TIME-WAIT after it): nothing listens on that port, yet no listener can bind it.
  // (An explicit localPort would not do: libuv binds it with SO_REUSEADDR, which lets a listener in.)
  const client = net.connect({ host: '127.0.0.1', port: Number(new URL(first.adminUrl).port) })
  await new Promise<void>((resolve, reject) => { client.once('connect', resolve); client.once('error', reject) })
  const held = client.localPort as number
  try {
    for (const [option, args] of [['--listen', ['--listen', `127.0.0.1:${held}`, '--admin-listen', `127.0.0.1:${otherAdmin}`]], ['--admin-listen', ['--listen', `127.0.0.1:${otherTls}`, '--admin-listen', `127.0.0.1:${held}`]]] as const) {
      const result = await second([...args])
      assert.equal(result.code, 3, result.stderr)
      assert.equal(result.stderr, `tlsfleet: 127.0.0.1:${held} is held by connections of this machine from port ${held} (no process listens on it: connections in TIME-WAIT or open ones, see ss -tan 'sport = :${held}'): wait for them to end or give another ${option} (TLSFLEET_ERR_ADDRESS_IN_USE)\n`)
    }
  } finally {
    client.destroy()
  }
})

test('--log-level debug adds the stack; the first node still serves throughout', async () => {
  const [otherTls] = await freePorts(1) as [number]
  const verbose = await second(['--listen', `127.0.0.1:${otherTls}`, '--log-level', 'debug'])
  assert.equal(verbose.code, 3)
  assert.match(verbose.stderr, /^tlsfleet: 127\.0\.0\.1:8445 is already in use/)
  assert.match(verbose.stderr, /\n\s+at /, 'no stack with --log-level debug')
  const health = await fetch(`${first.adminUrl}/health`)
  assert.equal(health.status, 200)
})

test('a multicast interface that does not exist is a configuration error naming --sync-interface', async () => {
  const [otherTls, otherAdmin, otherSync] = await freePorts(3) as [number, number, number]
  const result = await second(['--listen', `127.0.0.1:${otherTls}`, '--admin-listen', `127.0.0.1:${otherAdmin}`,
    '--sync-listen', `239.255.7.7:${otherSync}`, '--sync-interface', 'nosuch0', '--sync-secret-file', secret])
  assert.equal(result.code, 2, result.stderr)
  assert.match(result.stderr, /^tlsfleet: --sync-interface: no IPv4 address on interface "nosuch0" \(this machine has: .*lo.*\) \(TLSFLEET_ERR_CONFIG\)\n$/)
})

test('two listeners of the node on one address: a configuration conflict naming both options, exit 2, before anything is written or bound', async () => {
  const [port, otherTls, otherAdmin] = await freePorts(3) as [number, number, number]
  const stateDir = path.join(tempDir(), 'state')
  const cases: Array<[string[], string]> = [
    [['--listen', `127.0.0.1:${otherTls}`, '--admin-listen', `127.0.0.1:${port}`, '--agent-listen', `127.0.0.1:${port}`],
      `--admin-listen 127.0.0.1:${port} and --agent-listen 127.0.0.1:${port} are the same address`],
    [['--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${port}`], `--listen 127.0.0.1:${port} and --admin-listen 127.0.0.1:${port} are the same address`],
    // SO_REUSEPORT would let both bind: the node would have started with a listener it never uses.
    [['--listen', `127.0.0.1:${port}`, '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${otherAdmin}`], `--listen 127.0.0.1:${port} and --listen 127.0.0.1:${port} are the same address`],
    [['--listen', `0.0.0.0:${port}`, '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${otherAdmin}`], `--listen 0.0.0.0:${port} and --listen 127.0.0.1:${port} overlap`]
  ]
  for (const [args, named] of cases) {
    const result = await second([...args, '--state-dir', stateDir])
    assert.equal(result.code, 2, result.stderr)
    assert.match(result.stderr, /^tlsfleet: [^\n]* \(TLSFLEET_ERR_CONFIG_CONFLICT\)\n$/)
    assert.ok(result.stderr.startsWith(`tlsfleet: ${named}`), result.stderr)
    assert.equal(fs.existsSync(stateDir), false, 'the state directory was created')
  }
})

test('a TLSFLEET_* variable that names no option is logged as a warning naming the closest option, before a refusal it may explain', async () => {
  const [otherTls, otherAdmin, otherSync] = await freePorts(3) as [number, number, number]
  const result = await second(['--listen', `127.0.0.1:${otherTls}`, '--admin-listen', `127.0.0.1:${otherAdmin}`, '--sync-listen', `127.0.0.1:${otherSync}`],
    { TLSFLEET_SYNC_SECRET_FILES: secret, TLSFLEET_UNRELATED_THING: '1', TLSFLEET_CONFIG: undefined })
  assert.equal(result.code, 2, result.stderr)
  assert.match(result.stderr, /^tlsfleet: --sync-listen needs --sync-secret-file .*\(TLSFLEET_ERR_CONFIG_CONFLICT\)\n$/)
  const warnings = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { level: number; msg: string }).filter((entry) => entry.level === 40 && /TLSFLEET_(SYNC_SECRET_FILES|UNRELATED_THING) /.test(entry.msg)).map((entry) => entry.msg)
  assert.deepEqual(warnings, [
    'environment variable TLSFLEET_SYNC_SECRET_FILES names no tlsfleet option and is ignored (did you mean TLSFLEET_SYNC_SECRET_FILE?)',
    'environment variable TLSFLEET_UNRELATED_THING names no tlsfleet option and is ignored'
  ])
})
