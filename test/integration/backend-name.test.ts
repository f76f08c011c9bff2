import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import tls from 'node:tls'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { childPids, eventually, startNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'

const PRELOAD = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'count-lookups.js')).href

/** A client's bytes through the node to the backend, and the echo back. */
async function roundTrip (port: number, text: string): Promise<string> {
  const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  let reply = ''
  socket.on('data', (d: Buffer) => { reply += d.toString() })
  socket.end(text)
  await new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return reply
}

test('a --backend host name is looked up once per --backend-refresh, not for every connection (0: every connection, as before)', async () => {
  const dir = tempDir()
  const backend = await startRecordingBackend()
  const cert = makeCertificate(dir, 'name', ['localhost'])
  const counts: Record<string, number> = {}
  for (const refresh of ['30', '0']) {
    const log = path.join(dir, `lookups-${refresh}.log`)
    fs.writeFileSync(log, '')
    const [port, admin] = await freePorts(2) as [number, number]
    // localhost: 127.0.0.1 and ::1 for the system resolver; the backend listens on the first only,
    // so every address is handed to net.connect and it tries them in turn.
    const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--backend', `localhost:${backend.port}`, '--backend-refresh', refresh,
      '--backend-check-interval', '0', '--cert', cert, '--state-dir', path.join(dir, `state-${refresh}`)], { adminPort: admin, env: { NODE_OPTIONS: `--import ${PRELOAD}`, TEST_LOOKUP_LOG: log } })
    try {
      const [worker] = childPids(node.process.pid as number)
      for (let i = 0; i < 8; i++) assert.equal(await roundTrip(port, `r${refresh}-${i}`), `echo:r${refresh}-${i}bye`, node.diagnosis())
      await eventually(() => backend.connections.filter((c) => c.received.toString().startsWith(`r${refresh}-`)).length === 8, 5000, 'eight connections at the backend')
      counts[refresh] = fs.readFileSync(log, 'utf8').split('\n').filter((line) => line === `${String(worker)} localhost`).length
    } finally {
      await node.stop()
    }
  }
  assert.equal(counts['30'], 1, `with --backend-refresh 30 the worker looked localhost up ${String(counts['30'])} times for 8 connections`)
  assert.ok((counts['0'] ?? 0) >= 8, `with --backend-refresh 0 the worker looked localhost up ${String(counts['0'])} times for 8 connections`)
  await backend.close()
})
