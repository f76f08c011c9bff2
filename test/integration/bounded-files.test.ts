import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { tempDir } from '../helpers/certs.js'
import { CLI } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

/**
 * Files named by options are read bounded (src/util/bounded-file.ts): a FIFO, a device or a
 * huge file given as --config, --cert, --sync-secret-file or haproxy-keys --config is refused
 * at once, exit 2, one `tlsfleet:` line naming the option. Before, a FIFO hung the start in
 * open() for good (SIGTERM ignored: only SIGKILL ended it) and /dev/zero grew memory without
 * limit; each run here is killed with SIGKILL at 15 s, so a hang fails instead of blocking.
 */

const dir = tempDir()
const DEADLINE_MS = 15_000

interface Run { code: number | null; signal: NodeJS.Signals | null; stderr: string; ms: number }

/** `tlsfleet ARGS`, killed (SIGKILL: a process stuck in open() ignores SIGTERM) at the deadline. */
async function run (args: string[]): Promise<Run> {
  const started = Date.now()
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), DEADLINE_MS)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])))
  clearTimeout(timer)
  return { code, signal, stderr, ms: Date.now() - started }
}

/** A refusal: exit 2 well before the deadline, one line starting with `tlsfleet:` matching `message`. */
function assertRefused (r: Run, message: RegExp): void {
  assert.equal(r.signal, null, `hung: killed after ${DEADLINE_MS} ms; stderr: ${r.stderr}`)
  assert.equal(r.code, 2, r.stderr)
  assert.match(r.stderr, /^tlsfleet: /)
  assert.match(r.stderr, message)
  assert.ok(r.ms < 10_000, `took ${r.ms} ms`)
}

function fifo (name: string): string {
  const file = path.join(dir, name)
  execFileSync('mkfifo', [file])
  return file
}

/**
 * Node options that keep a refused start from touching anything shared (the refusals come
 * before anything binds; free ports all the same, should one not).
 */
async function nodeArgs (name: string): Promise<string[]> {
  const [listen, admin, agent] = await freePorts(3)
  return ['node', '--workers', '1', '--state-dir', path.join(dir, `state-${name}`), '--listen', `127.0.0.1:${listen}`, '--admin-listen', `127.0.0.1:${admin}`, '--agent-listen', `127.0.0.1:${agent}`]
}

test('--config naming a FIFO is refused at once (tlsfleet node and tlsfleet haproxy-keys)', async () => {
  const pipe = fifo('node.yaml')
  assertRefused(await run([...await nodeArgs('config'), '--config', pipe]), /--config ".*node\.yaml": not a regular file \(a FIFO\) \(TLSFLEET_ERR_CONFIG\)/)
  assertRefused(await run(['haproxy-keys', '--config', pipe, '--out', path.join(dir, 'keys')]), /--config ".*node\.yaml": not a regular file \(a FIFO\) \(TLSFLEET_ERR_CONFIG\)/)
  assert.equal(fs.existsSync(path.join(dir, 'keys')), false, 'nothing written')
})

test('--cert naming a FIFO or /dev/zero is refused at once, without reading it', async () => {
  const pipe = fifo('cert.pem')
  assertRefused(await run([...await nodeArgs('cert-fifo'), '--cert', pipe]), /--cert ".*cert\.pem": not a regular file \(a FIFO\) \(TLSFLEET_ERR_CERTIFICATE\)/)
  assertRefused(await run([...await nodeArgs('cert-zero'), '--cert', '/dev/zero']), /--cert "\/dev\/zero": not a regular file \(a character device\) \(TLSFLEET_ERR_CERTIFICATE\)/)
})

test('--client-ca naming a FIFO is refused at once (--crl, --session-store-ca and -cert read the same way: unit tests)', async () => {
  const pipe = fifo('ca.pem')
  assertRefused(await run([...await nodeArgs('ca'), '--client-verify', 'optional', '--client-ca', pipe]), /--client-ca ".*ca\.pem": not a regular file \(a FIFO\) \(TLSFLEET_ERR_CONFIG\)/)
})

test('a --sync-secret-file over the cap (a sparse 3 GiB file) is refused with TLSFLEET_ERR_FARM_SECRET, without reading it', async () => {
  const secret = path.join(dir, 'farm.key')
  fs.writeFileSync(secret, '', { mode: 0o600 })
  fs.truncateSync(secret, 3 * 1024 ** 3)
  assertRefused(await run([...await nodeArgs('secret'), '--sync-secret-file', secret]), /--sync-secret-file ".*farm\.key": 3221225472 bytes, over the 16 KiB allowed; a farm secret is never that large .*\(TLSFLEET_ERR_FARM_SECRET\)/)
  assertRefused(await run(['haproxy-keys', '--sync-secret-file', secret, '--out', path.join(dir, 'keys')]), /--sync-secret-file ".*farm\.key": 3221225472 bytes, over the 16 KiB allowed/)
})
