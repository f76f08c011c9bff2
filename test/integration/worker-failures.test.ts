import assert from 'node:assert/strict'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { childPids, eventually, startNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'

const HUNG = 'worker hung (no answer to the primary): killed, to be replaced'

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

test('a worker that stops answering the primary is killed after --worker-hang-timeout and replaced; a paused primary kills nothing', async () => {
  const dir = tempDir()
  const backend = await startRecordingBackend()
  const cert = makeCertificate(dir, 'hang', ['localhost'])
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '1', '--worker-hang-timeout', '3', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`, '--cert', cert], { adminPort: admin })
  const primary = node.process.pid as number
  const explained = (err: Error): never => { throw new Error(`${err.message}; ${node.diagnosis()}`) }
  try {
    const [worker] = childPids(primary)
    assert.ok(worker !== undefined)
    assert.equal(await node.metric('tlsfleet_worker_restarts_total', { reason: 'hung' }), 0, 'the series is there from the start')

    // The primary itself paused longer than the timeout (a VM freeze, SIGSTOP) while the worker
    // was slow: the report rounds in flight end unanswered on resume, though the worker's answers
    // wait in the channel. Nothing is killed.
    process.kill(worker, 'SIGSTOP')
    await new Promise((resolve) => setTimeout(resolve, 1300))
    process.kill(primary, 'SIGSTOP')
    process.kill(worker, 'SIGCONT')
    await new Promise((resolve) => setTimeout(resolve, 4500))
    process.kill(primary, 'SIGCONT')
    await new Promise((resolve) => setTimeout(resolve, 4500))
    assert.equal(node.logs.some((l) => l.msg === HUNG), false, `a paused primary took its pause for a hung worker:\n${node.diagnosis()}`)
    assert.deepEqual(childPids(primary), [worker])

    // A worker stopped for less than the timeout is only slow.
    process.kill(worker, 'SIGSTOP')
    await new Promise((resolve) => setTimeout(resolve, 1500))
    process.kill(worker, 'SIGCONT')
    await new Promise((resolve) => setTimeout(resolve, 3000))
    assert.equal(node.logs.some((l) => l.msg === HUNG), false, node.diagnosis())
    assert.equal((await sClient({ port, tls: '1.3' })).protocol, 'TLSv1.3')

    // Stuck for good: killed once the timeout and three rounds have passed, then replaced.
    const stoppedAt = Date.now()
    process.kill(worker, 'SIGSTOP')
    const line = await node.waitForLog((l) => l.msg === HUNG, 15_000).catch(explained)
    assert.equal(line.worker, worker)
    assert.equal(line.hangTimeoutMs, 3000)
    assert.ok(typeof line.silentMs === 'number' && line.silentMs >= 3000, `silent ${String(line.silentMs)} ms`)
    assert.ok(Date.now() - stoppedAt >= 3000)
    await eventually(() => !alive(worker), 5000, 'the hung worker gone').catch(explained)
    await eventually(async () => await node.metric('tlsfleet_workers', { state: 'listening' }) === 1, 15_000, 'a replacement listening').catch(explained)
    const [replacement] = childPids(primary)
    assert.ok(replacement !== undefined && replacement !== worker)
    assert.ok(node.logs.some((l) => l.msg === 'hung worker gone; replacing it' && l.worker === worker && l.signal === 'SIGKILL'), node.diagnosis())
    assert.equal(await node.metric('tlsfleet_worker_restarts_total', { reason: 'hung' }), 1)
    assert.equal(await node.metric('tlsfleet_worker_restarts_total', { reason: 'died' }), 0)
    assert.equal((await sClient({ port, tls: '1.3' })).protocol, 'TLSv1.3', 'the replacement serves')

    // A worker that dies on its own counts as died.
    process.kill(replacement, 'SIGKILL')
    await eventually(async () => await node.metric('tlsfleet_worker_restarts_total', { reason: 'died' }) === 1, 15_000, 'the death counted').catch(explained)
    assert.equal(await node.metric('tlsfleet_worker_restarts_total', { reason: 'hung' }), 1)
  } finally {
    await node.stop()
    await backend.close()
  }
})

test('a worker that crashes (uncaught exception) says why in the JSON log and sends its last counts: /metrics keeps what it counted since the last scrape', async () => {
  const dir = tempDir()
  const backend = await startRecordingBackend()
  const cert = makeCertificate(dir, 'crash', ['localhost'])
  const [port, admin] = await freePorts(2) as [number, number]
  const preload = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'crash-on-signal.js')).href
  const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`, '--cert', cert], { adminPort: admin, env: { NODE_OPTIONS: `--import ${preload}` } })
  const explained = (err: Error): never => { throw new Error(`${err.message}; ${node.diagnosis()}`) }
  try {
    const [worker] = childPids(node.process.pid as number)
    assert.ok(worker !== undefined)
    for (let i = 0; i < 3; i++) assert.equal((await sClient({ port, tls: '1.3' })).protocol, 'TLSv1.3')
    assert.equal(await node.metric('tlsfleet_handshakes_total'), 3, 'scraped once: the worker\'s report is on the page')
    // Counted after the last scrape: only the worker knows these.
    for (let i = 0; i < 4; i++) assert.equal((await sClient({ port, tls: '1.3' })).protocol, 'TLSv1.3')
    process.kill(worker, 'SIGUSR2')
    const crashed = await node.waitForLog((l) => l.msg === 'worker crashed (uncaught exception): it exits and is replaced', 10_000).catch(explained)
    assert.equal(crashed.level, 60, 'fatal')
    assert.match(JSON.stringify(crashed.err), /crash asked for by the test \(SIGUSR2\)/)
    await node.waitForLog((l) => l.msg === 'worker died; replacing it' && l.worker === worker && l.code === 1, 10_000).catch(explained)
    await eventually(async () => await node.metric('tlsfleet_workers', { state: 'listening' }) === 1, 15_000, 'a replacement listening').catch(explained)
    assert.equal(await node.metric('tlsfleet_handshakes_total'), 7, 'the crashed worker\'s counts since the last scrape were lost')
    assert.equal(await node.metric('tlsfleet_worker_restarts_total', { reason: 'died' }), 1)
    assert.equal((await sClient({ port, tls: '1.3' })).protocol, 'TLSv1.3', 'the replacement serves')
  } finally {
    await node.stop()
    await backend.close()
  }
})
