import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { promisify } from 'node:util'
import { parseClientHello, type ClientHelloInfo, type ClientHelloResult } from '../../src/tls/client-hello.js'
import { TicketKeySchedule, type TicketKeyGeneration } from '../../src/tls/ticket-keys.js'

const execFileAsync = promisify(execFile)
const HOST = '127.0.0.1'
const SERVERNAME = 'example.test'
const WAIT_MS = 10_000

let dir = ''
let key: Buffer
let cert: Buffer

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tlsfleet-hello-'))
  const k = path.join(dir, 'k')
  const c = path.join(dir, 'c')
  await execFileAsync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', k, '-out', c, '-days', '1',
    '-subj', `/CN=${SERVERNAME}`, '-addext', `subjectAltName=DNS:${SERVERNAME}`], { timeout: WAIT_MS })
  key = await fs.readFile(k)
  cert = await fs.readFile(c)
})

after(async () => {
  if (dir !== '') await fs.rm(dir, { recursive: true, force: true })
})

async function withTimeout<T> (promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

function listen (server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: HOST, port: 0 }, () => {
      const address = server.address()
      if (address === null || typeof address === 'string') reject(new Error('unexpected address'))
      else resolve(address.port)
    })
  })
}

async function closeServer (server: net.Server): Promise<void> {
  await withTimeout(new Promise<void>((resolve) => server.close(() => resolve())), 'server close')
}

/** A plain TCP listener that reads one connection's ClientHello, then drops the connection. */
async function captureHello (connect: (port: number) => () => void): Promise<{ result: ClientHelloResult; bytes: Buffer }> {
  let done: (value: { result: ClientHelloResult; bytes: Buffer }) => void = () => {}
  const captured = new Promise<{ result: ClientHelloResult; bytes: Buffer }>((resolve) => { done = resolve })
  const server = net.createServer((socket) => {
    let bytes = Buffer.alloc(0)
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => {
      bytes = Buffer.concat([bytes, chunk])
      const result = parseClientHello(bytes)
      if (result.status === 'incomplete') return
      done({ result, bytes })
      socket.destroy()
    })
  })
  const port = await listen(server)
  const stop = connect(port)
  try {
    return await withTimeout(captured, 'ClientHello capture')
  } finally {
    stop()
    await closeServer(server)
  }
}

function helloOf (capture: { result: ClientHelloResult }): ClientHelloInfo {
  assert.equal(capture.result.status, 'ok', JSON.stringify(capture.result))
  if (capture.result.status !== 'ok') throw new Error('unreachable')
  return capture.result.hello
}

function opensslClient (flag: '-tls1_2' | '-tls1_3'): (port: number) => () => void {
  return (port) => {
    const child = spawn('openssl', ['s_client', '-connect', `${HOST}:${port}`, '-servername', SERVERNAME, flag],
      { stdio: ['ignore', 'ignore', 'ignore'] })
    child.on('error', () => {})
    return () => { if (child.exitCode === null) child.kill('SIGKILL') }
  }
}

type Version = 'TLSv1.2' | 'TLSv1.3'

function nodeClient (version: Version, session?: Buffer): (port: number) => () => void {
  return (port) => {
    const opts: tls.ConnectionOptions = { host: HOST, port, servername: SERVERNAME, ca: cert, minVersion: version, maxVersion: version }
    if (session !== undefined) opts.session = session
    const socket = tls.connect(opts)
    socket.on('error', () => {})
    return () => socket.destroy()
  }
}

/** A real tls.Server using `keys` as ticketKeys (one per ticket key generation). */
function ticketServer (keys: Buffer): tls.Server {
  const server = tls.createServer({ key, cert, ticketKeys: keys, minVersion: 'TLSv1.2' }, (socket) => {
    socket.on('error', () => {})
    socket.end('hello')
  })
  server.on('tlsClientError', () => {})
  return server
}

interface Visit { reused: boolean; sessions: Buffer[]; protocol: string | null }

/** Connect, read to the end, and keep every session (ticket) the server sent. */
async function visit (port: number, version: Version, session?: Buffer): Promise<Visit> {
  const opts: tls.ConnectionOptions = { host: HOST, port, servername: SERVERNAME, ca: cert, minVersion: version, maxVersion: version }
  if (session !== undefined) opts.session = session
  const socket = tls.connect(opts)
  const sessions: Buffer[] = []
  socket.on('session', (s: Buffer) => sessions.push(s))
  try {
    await withTimeout(once(socket, 'secureConnect'), `${version} handshake`)
    const reused = socket.isSessionReused()
    const protocol = socket.getProtocol()
    socket.resume()
    await withTimeout(once(socket, 'end'), `${version} end of stream`)
    // TLS 1.3 tickets arrive after the handshake, but before the server's data and FIN.
    return { reused, sessions, protocol }
  } finally {
    socket.destroy()
  }
}

const secret = Buffer.from('tlsfleet integration farm secret, 32+ bytes long')

describe('real ClientHellos from openssl s_client', () => {
  it('TLS 1.2 only: SNI, no TLS 1.3, no ticket', async () => {
    const hello = helloOf(await captureHello(opensslClient('-tls1_2')))
    assert.equal(hello.serverName, SERVERNAME)
    assert.equal(hello.offersTls13, false)
    assert.equal(hello.legacyVersion, 0x0303)
    assert.equal(hello.ticketKeyName, undefined)
    assert.equal(hello.sessionTicketExtPresent, true, 'OpenSSL asks for a ticket with an empty extension')
    assert.equal(hello.sessionTicket, undefined)
  })

  it('TLS 1.3: SNI, offers 1.3, 32-byte random legacy session id', async () => {
    const hello = helloOf(await captureHello(opensslClient('-tls1_3')))
    assert.equal(hello.serverName, SERVERNAME)
    assert.equal(hello.offersTls13, true)
    assert.deepEqual(hello.supportedVersions, [0x0304])
    assert.equal(hello.legacyVersion, 0x0303)
    assert.equal(hello.sessionId.length, 32, 'middlebox compatibility mode')
    assert.deepEqual(hello.pskIdentities, [])
    assert.equal(hello.ticketKeyName, undefined)
  })
})

describe('real ClientHellos from Node tls.connect carrying tickets', () => {
  const schedule = new TicketKeySchedule({ secret, rotationSeconds: 3600, lifetimeSeconds: 7200 })
  const gen = schedule.current()

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`${version}: the presented ticket starts with the generation's key name`, async () => {
      const server = ticketServer(gen.keys)
      const port = await listen(server)
      try {
        const first = await visit(port, version)
        assert.equal(first.protocol, version)
        const session = first.sessions.at(-1)
        assert.ok(session !== undefined, 'a full handshake issues a ticket')

        const hello = helloOf(await captureHello(nodeClient(version, session)))
        assert.equal(hello.serverName, SERVERNAME)
        assert.equal(hello.offersTls13, version === 'TLSv1.3')
        assert.ok(hello.ticketKeyName !== undefined, 'a ticket key name was found')
        assert.deepEqual(hello.ticketKeyName, gen.name)
        assert.equal(schedule.byName(hello.ticketKeyName)?.epoch, gen.epoch)
        if (version === 'TLSv1.2') {
          assert.ok(hello.sessionTicket !== undefined)
          assert.deepEqual(hello.sessionTicket.subarray(0, 16), gen.name)
          assert.deepEqual(hello.pskIdentities, [])
          // OpenSSL's client sets the session id of a ticket session to SHA-256(ticket), so
          // Node's resumeSession() is not called for it (a ticket is present).
          assert.equal(hello.sessionId.length, 32)
        } else {
          assert.equal(hello.pskIdentities.length, 1)
          assert.deepEqual(hello.pskIdentities[0]?.subarray(0, 16), gen.name)
          assert.equal(hello.sessionTicket, undefined)
        }

        // And the ticket resumes on another server of the same generation (another node).
        const server2 = ticketServer(gen.keys)
        const port2 = await listen(server2)
        try {
          const again = await visit(port2, version, session)
          assert.equal(again.reused, true)
          // Node's ticket callback answers "valid, no renewal", so OpenSSL sends no new ticket
          // on a resumed connection, in TLS 1.2 and in TLS 1.3 alike.
          assert.equal(again.sessions.length, 0)
        } finally {
          await closeServer(server2)
        }
      } finally {
        await closeServer(server)
      }
    })
  }
})

describe('per-connection generation selection keeps tickets alive across a rotation', () => {
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`${version}: resumes on the previous generation, full handshake once it expired`, async () => {
      const clock = { ms: 3600_000 * 500_000 + 1000 }
      const schedule = new TicketKeySchedule({ secret, rotationSeconds: 3600, lifetimeSeconds: 7200, now: () => clock.ms })
      const servers = new Map<number, tls.Server>()
      const serverFor = (g: TicketKeyGeneration): tls.Server => {
        let s = servers.get(g.epoch)
        if (s === undefined) {
          s = ticketServer(g.keys)
          servers.set(g.epoch, s)
        }
        return s
      }
      const chosen: number[] = []
      // The worker's job in miniature: read the hello, pick the generation, hand the socket over.
      const front = net.createServer((socket) => {
        let bytes = Buffer.alloc(0)
        socket.on('error', () => {})
        const onData = (chunk: Buffer): void => {
          bytes = Buffer.concat([bytes, chunk])
          const result = parseClientHello(bytes)
          if (result.status === 'incomplete') return
          socket.removeListener('data', onData)
          socket.pause()
          socket.unshift(bytes)
          const name = result.status === 'ok' ? result.hello.ticketKeyName : undefined
          const g = (name !== undefined ? schedule.byName(name) : undefined) ?? schedule.current()
          chosen.push(g.epoch)
          serverFor(g).emit('connection', socket)
        }
        socket.on('data', onData)
      })
      const port = await listen(front)
      try {
        const e = schedule.current().epoch
        const first = await visit(port, version)
        assert.equal(first.reused, false)
        const session = first.sessions.at(-1)
        assert.ok(session !== undefined)
        assert.deepEqual(helloOf(await captureHello(nodeClient(version, session))).ticketKeyName, schedule.generation(e).name)

        clock.ms += 3600_000 // rotation: current is now e + 1
        const resumed = await visit(port, version, session)
        assert.equal(resumed.reused, true, 'resumed under the previous generation')
        assert.deepEqual(chosen, [e, e])

        // No ticket is renewed on a resumed connection (see above): the client keeps presenting
        // the generation-e ticket, which lives only as long as generation e is acceptable.
        assert.equal(resumed.sessions.length, 0)
        const afterRotation = clock.ms
        clock.ms = schedule.epochStartMs(e + 1) + 7200_000 - 1 // 1 ms before lifetime runs out
        assert.equal((await visit(port, version, session)).reused, true, 'still within the lifetime')
        clock.ms = afterRotation

        const fresh = await visit(port, version)
        assert.equal(fresh.reused, false)
        assert.ok(fresh.sessions.length > 0, 'a full handshake under e + 1 issues a new ticket')
        assert.deepEqual(chosen, [e, e, e, e + 1])

        clock.ms = schedule.epochStartMs(e + 1) + 7200_000 // generation e is beyond its lifetime now
        assert.equal(schedule.byName(schedule.generation(e).name), undefined)
        const expired = await visit(port, version, session)
        assert.equal(expired.reused, false, 'an expired generation is not accepted')
        assert.deepEqual(chosen, [e, e, e, e + 1, e + 3])
      } finally {
        await closeServer(front)
        for (const s of servers.values()) await closeServer(s)
      }
    })
  }
})
