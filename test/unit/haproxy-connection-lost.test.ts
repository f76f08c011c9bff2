import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import pino from 'pino'
import { HaproxyTerminator } from '../../src/haproxy/haproxy-terminator.js'
import { connectionLost, HaproxyRuntimeApi } from '../../src/haproxy/runtime-api.js'
import type { TerminatorHealth } from '../../src/node/terminator-part.js'
import { createLogger } from '../../src/util/logger.js'
import { freePorts } from '../helpers/ports.js'

// A local HAProxy that stops mid-round, made deterministic: a unix socket that answers the
// first commands as HAProxy 2.6 does and then goes away in each of the ways a stopping
// HAProxy can (the real one is met only by chance in test/integration: a race with its exit).

const SHOW_INFO = 'Name: HAProxy\nVersion: 2.6.12\nPid: 4242\nStart_time_sec: 1700000000\nStopping: 0\nIdle_pct: 100\n\n'

/** What the fake does with its Nth connection (1-based): a reply, or a way of going away. */
type Step = { reply: string } | 'reset' | 'half-reply' | 'exit'

class FakeRuntimeSocket {
  readonly path: string
  private readonly server: net.Server
  private connections = 0

  constructor (dir: string, private readonly steps: (n: number) => Step) {
    this.path = path.join(dir, 'admin.sock')
    // Paused: a connection to be reset must keep its command unread (see 'reset').
    this.server = net.createServer({ pauseOnConnect: true }, (socket) => this.serve(socket))
  }

  async listen (): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(this.path, resolve))
  }

  async close (): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private serve (socket: net.Socket): void {
    const step = this.steps(++this.connections)
    socket.on('error', () => {})
    // Closing a unix socket with unread data resets the peer (ECONNRESET); if the command has
    // not arrived yet the client's write fails (EPIPE) or it reads no reply: all three are
    // what a stopping HAProxy gives, and all must read as "gone".
    if (step === 'reset') { setTimeout(() => socket.destroy(), 20); return }
    socket.resume()
    let line = ''
    socket.on('data', (chunk: Buffer) => {
      line += chunk.toString('latin1')
      if (!line.includes('\n')) return
      if (step === 'half-reply') socket.end('adm')
      else if (step === 'exit') { socket.end(SHOW_INFO); void this.close() } else socket.end(step.reply)
    })
  }
}

async function withTerminator (steps: (n: number) => Step, run: (t: HaproxyTerminator, health: TerminatorHealth[], socket: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-lost-'))
  const fake = new FakeRuntimeSocket(dir, steps)
  await fake.listen()
  const health: TerminatorHealth[] = []
  const terminator = new HaproxyTerminator(
    { socket: fake.path, keyFile: path.join(dir, 'tls-ticket-keys'), frontends: [], rotationSeconds: 3600, sessionTimeoutSeconds: 300, timeoutMs: 2000, log: createLogger({ level: 'silent', format: 'json', name: 'test' }) },
    { onHealth: (h) => health.push(typeof h === 'function' ? h() : h), onLoad: () => {} }
  )
  try {
    await run(terminator, health, fake.path)
  } finally {
    await terminator.stop()
    await fake.close().catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

test('a HAProxy that resets the connection between two commands of a round is unreachable, and its setup is checked again when it answers', async () => {
  // Connection 1: show info. 2: show cli level, reset. 3: show info again (same process).
  // 4: show cli level answers "user": the setup check runs again for the same process.
  await withTerminator((n) => n === 2 ? 'reset' : n % 2 === 1 ? { reply: SHOW_INFO } : { reply: 'user\n\n' }, async (terminator, health, socket) => {
    await terminator.poll()
    assert.deepEqual(health.at(-1), { serving: false, reason: `local haproxy unreachable at ${socket}` })
    assert.equal(terminator.status().reachable, false)
    await terminator.poll()
    // Before the fix the interrupted check counted as done and the level was never asked.
    assert.match(health.at(-1)?.reason ?? '', /answers at level "user"/)
    // The full text is for the log and the status; HAProxy's agent line gets a few words.
    assert.equal(health.at(-1)?.agentReason, 'local haproxy socket is at level user, needs admin')
    assert.equal(terminator.status().reachable, true)
  })
})

test('a HAProxy whose socket is gone after show info (it exited) is unreachable', async () => {
  await withTerminator((n) => n === 1 ? 'exit' : { reply: 'admin\n\n' }, async (terminator, health, socket) => {
    await terminator.poll()
    assert.deepEqual(health.at(-1), { serving: false, reason: `local haproxy unreachable at ${socket}` })
  })
})

test('a HAProxy that closes in the middle of a reply is unreachable', async () => {
  await withTerminator((n) => n === 1 ? { reply: SHOW_INFO } : 'half-reply', async (terminator, health, socket) => {
    await terminator.poll()
    assert.deepEqual(health.at(-1), { serving: false, reason: `local haproxy unreachable at ${socket}` })
  })
})

test('a HAProxy that answers something unusable is not "unreachable": the agent names the answer', async () => {
  await withTerminator((n) => n === 1 ? { reply: SHOW_INFO } : { reply: 'Permission denied\n\n' }, async (terminator, health) => {
    await terminator.poll()
    const reason = health.at(-1)?.reason ?? ''
    assert.doesNotMatch(reason, /unreachable/)
    assert.match(reason, /Permission denied/)
    assert.equal(terminator.status().reachable, true)
  })
})

test('connectionLost: socket errors of a vanished HAProxy and replies cut short, not refusals or timeouts', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-lost-'))
  try {
    const api = new HaproxyRuntimeApi(path.join(dir, 'none.sock'), { timeoutMs: 1000 })
    const missing = await api.showInfo().then(() => undefined, (err: unknown) => err)
    assert.ok(missing instanceof Error)
    assert.equal(connectionLost(missing), true, 'ENOENT')

    const silent = net.createServer({ pauseOnConnect: true }, () => {})
    const wedged = path.join(dir, 'wedged.sock')
    await new Promise<void>((resolve) => silent.listen(wedged, resolve))
    const slow = await new HaproxyRuntimeApi(wedged, { timeoutMs: 100 }).showInfo().then(() => undefined, (err: unknown) => err)
    silent.close()
    assert.match(String(slow), /no complete reply/)
    assert.equal(connectionLost(slow), false, 'a wedged HAProxy is not a vanished one')
    assert.equal(connectionLost(new Error('plain')), false)
    assert.equal(connectionLost(undefined), false)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

/** A unix socket that answers every command with `reply` and closes. */
async function replying (dir: string, reply: string): Promise<{ api: HaproxyRuntimeApi; close: () => void }> {
  const file = path.join(dir, `reply-${Math.random().toString(36).slice(2)}.sock`)
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    socket.once('data', () => socket.end(reply))
  })
  await new Promise<void>((resolve) => server.listen(file, resolve))
  return { api: new HaproxyRuntimeApi(file, { timeoutMs: 2000 }), close: () => server.close() }
}

test('a reply cut at a line boundary (no closing empty line) is a lost connection, not a shorter answer', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-lost-'))
  const keyFile = '/etc/haproxy/tls-ticket-keys'
  const key = (n: number): string => Buffer.alloc(48, n).toString('base64')
  const whole = `# id secret\n# 0 (${keyFile})\n0.0 ${key(1)}\n0.1 ${key(2)}\n0.2 ${key(3)}\n\n`
  try {
    const complete = await replying(dir, whole)
    assert.deepEqual(await complete.api.showTlsKeys(keyFile), [key(1), key(2), key(3)])
    complete.close()
    // Two keys of three: before the fix this passed for a ring HAProxy holds.
    const cut = await replying(dir, whole.slice(0, whole.indexOf(`0.2 `)))
    const err = await cut.api.showTlsKeys(keyFile).then(() => undefined, (e: unknown) => e)
    cut.close()
    assert.ok(err instanceof Error, 'a cut ring was accepted')
    assert.equal(connectionLost(err), true)
    assert.match(err.message, /incomplete reply from haproxy to "show tls-keys \/etc\/haproxy\/tls-ticket-keys"/)
    assert.equal(JSON.stringify(err).includes(key(1)), false, 'the part received (key material) is kept in the error')

    const refs = await replying(dir, `# id (file)\n0 (${keyFile})\n`)
    const refsErr = await refs.api.showTlsKeyRefs().then(() => undefined, (e: unknown) => e)
    refs.close()
    assert.equal(connectionLost(refsErr), true)

    // What HAProxy 2.6 answers to a silent success, and to a ticket key push.
    const silent = await replying(dir, '\n')
    await silent.api.silentCommand('set server be/n1 state ready')
    silent.close()
    const pushed = await replying(dir, 'TLS ticket key updated!\n\n')
    await pushed.api.setTlsKey(keyFile, key(4))
    pushed.close()
    const cutPush = await replying(dir, 'TLS ticket key updated!\n')
    const pushErr = await cutPush.api.setTlsKey(keyFile, key(4)).then(() => undefined, (e: unknown) => e)
    cutPush.close()
    assert.equal(connectionLost(pushErr), true, 'a push cut short is a lost connection too')
    assert.equal(String(pushErr).includes(key(4)), false)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('a socket error is said once in the log line: the address and errno appear one time each', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-lost-'))
  try {
    const [port] = await freePorts(1) as [number]
    for (const [target, errno] of [[path.join(dir, 'node.sock'), 'ENOENT'], [`127.0.0.1:${port}`, 'ECONNREFUSED']] as const) {
      const err = await new HaproxyRuntimeApi(target, { timeoutMs: 1000 }).showInfo().then(() => undefined, (e: unknown) => e)
      assert.equal(connectionLost(err), true, errno)
      // What pino writes for { err }: the message with any cause's message appended.
      const logged = pino.stdSerializers.err(err as Error).message
      assert.equal(logged, `haproxy runtime API ${target}: connect ${errno}`)
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
