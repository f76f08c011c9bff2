import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { childPids, eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { resumesEventually } from '../helpers/farm.js'
import { sClient } from '../helpers/openssl.js'
import { freePorts } from '../helpers/ports.js'
import { startRecordingBackend } from '../helpers/recording-backend.js'

let node: RunningNode
let port: number
let port6: number
let dir: string
let backend: Awaited<ReturnType<typeof startRecordingBackend>>

before(async () => {
  dir = tempDir()
  const cert = makeCertificate(dir, 'node', ['localhost'])
  backend = await startRecordingBackend()
  let admin: number
  ;[port, admin] = await freePorts(2) as [number, number]
  ;[port6] = await freePorts(1, '::1') as [number]
  node = await startNode([
    '--workers', '2', '--listen', `127.0.0.1:${port}`, '--listen', `[::1]:${port6}`,
    '--backend', `127.0.0.1:${backend.port}`, '--cert', cert
  ], { adminPort: admin })
})

after(async () => {
  await node?.stop()
  await backend?.close()
})

// -no_ticket: the client offers no session ticket, so only the session ID can resume.
const NO_TICKET = ['-no_ticket']

test('TLS 1.2 sessions resume by session ID on whichever worker the client lands on (openssl s_client)', async () => {
  const sess = path.join(dir, 'session.pem')
  const first = await sClient({ port, tls: '1.2', sessOut: sess, extra: NO_TICKET })
  assert.equal(first.protocol, 'TLSv1.2', first.output)
  assert.equal(first.reused, false)
  const runs = 24
  for (let i = 0; i < runs; i++) {
    const again = await sClient({ port, tls: '1.2', sessIn: sess, extra: NO_TICKET })
    assert.equal(again.reused, true, `connection ${i + 1} of ${runs} was not resumed:\n${again.output}`)
  }
  // With one SO_REUSEPORT listener per worker and a new source port per connection, the other
  // worker handled some of them: it could only resume through L2, the primary's cache.
  assert.ok(await node.metric('tlsfleet_session_cache_lookups_total', { level: 'l2', result: 'hit' }) >= 1, 'no L2 hit: the second worker never resumed')
  assert.ok(await node.metric('tlsfleet_handshakes_total', { result: 'resumed', version: 'TLSv1.2' }) >= runs)
  assert.equal(await node.metric('tlsfleet_handshakes_total', { result: 'full', version: 'TLSv1.2' }), 1)
})

test('the node listens on IPv6 as well', async () => {
  const sess = path.join(dir, 'session6.pem')
  const first = await sClient({ host: '::1', port: port6, tls: '1.2', sessOut: sess, extra: NO_TICKET })
  assert.equal(first.protocol, 'TLSv1.2', first.output)
  // The second connection may land on the other worker before the New reached L2 (IPC from
  // another process): retry briefly, as a returning client would.
  const again = await resumesEventually(async () => await sClient({ host: '::1', port: port6, tls: '1.2', sessIn: sess, extra: NO_TICKET }))
  assert.equal(again.reused, true, again.output)
})

test('a worker killed with SIGKILL is replaced, and sessions still resume (L2 survived)', async () => {
  const sess = path.join(dir, 'session-kill.pem')
  assert.equal((await sClient({ port, tls: '1.2', sessOut: sess, extra: NO_TICKET })).reused, false)
  const workers = (): number[] => childPids(node.process.pid as number)
  const before = workers()
  assert.equal(before.length, 2, `expected 2 workers, found ${before.join(',')}`)
  for (const pid of before) process.kill(pid, 'SIGKILL')
  // A CI run once saw no replacement and the node gone after this kill: say what the node said.
  const explained = (err: Error): never => { throw new Error(`${err.message}; ${node.diagnosis()}`) }
  await eventually(() => {
    const now = workers()
    return now.length === 2 && now.every((pid) => !before.includes(pid))
  }, 15_000, 'replacement workers').catch(explained)
  await eventually(async () => await node.metric('tlsfleet_workers', { state: 'listening' }) === 2, 15_000, 'workers listening').catch(explained)
  // Both workers are new: their L1s are empty, so every resumption below comes from L2.
  for (let i = 0; i < 6; i++) {
    const again = await sClient({ port, tls: '1.2', sessIn: sess, extra: NO_TICKET })
    assert.equal(again.reused, true, `after the workers were killed, connection ${i + 1} was not resumed:\n${again.output}`)
  }
  const res = await fetch(`${node.adminUrl}/health`)
  assert.equal(res.status, 200)
})

test('TLS 1.3 and TLS 1.2 ticket clients resume across workers with the node\'s shared ticket keys', async () => {
  for (const version of ['1.3', '1.2'] as const) {
    const sess = path.join(dir, `ticket-${version}.pem`)
    const first = await sClient({ port, tls: version, sessOut: sess })
    assert.equal(first.protocol, `TLSv${version}`, first.output)
    for (let i = 0; i < 12; i++) {
      const again = await sClient({ port, tls: version, sessIn: sess })
      assert.equal(again.reused, true, `TLS ${version} ticket, connection ${i + 1} was not resumed:\n${again.output}`)
    }
  }
  assert.ok(await node.metric('tlsfleet_handshakes_total', { result: 'resumed', version: 'TLSv1.3' }) >= 12)
})

test('with tickets on, a new TLS 1.2 client that can take a ticket is not stored for session-ID resumption: it resumes with its ticket', async () => {
  const before = await node.metric('tlsfleet_session_cache_entries')
  const sess = path.join(dir, 'ticket-only.pem')
  assert.equal((await sClient({ port, tls: '1.2', sessOut: sess })).reused, false)
  const again = await sClient({ port, tls: '1.2', sessIn: sess })
  assert.equal(again.reused, true, again.output)
  // A client without tickets is stored; its New travels after the first one's would have, on
  // the same channel, so once it is in L2 the first would be too.
  assert.equal((await sClient({ port, tls: '1.2', extra: NO_TICKET })).reused, false)
  await eventually(async () => await node.metric('tlsfleet_session_cache_entries') >= before + 1, 5000, 'the no-ticket session in L2')
  assert.equal(await node.metric('tlsfleet_session_cache_entries'), before + 1)
})
