import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { STATE_ANSWER } from '../../src/cli/admin-answers.js'
import { AdminClient, MAX_ANSWER_BYTES } from '../../src/cli/admin-client.js'
import { AdminClientError } from '../../src/errors.js'

/**
 * Answers `tlsfleet status` may meet at --admin when it is not a healthy node: one that stalls
 * halfway through its body, and something that streams without end. Real HTTP on loopback.
 */

let server: http.Server
let base: string
/** What /endless had sent when its client went away. */
let endlessSent: Promise<number>

before(async () => {
  server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    if (req.url === '/drip') {
      res.write('{"a":')
      const timer = setInterval(() => res.write(' '), 100)
      res.on('close', () => clearInterval(timer))
      return
    }
    // /endless: far more than the client reads, sent as fast as it is taken.
    const block = Buffer.alloc(1024 * 1024, 0x20)
    let sent = 0
    endlessSent = new Promise((resolve) => res.on('close', () => resolve(sent)))
    const pump = (): void => {
      while (sent <= MAX_ANSWER_BYTES * 2 && res.write(block)) sent += block.length
      if (sent <= MAX_ANSWER_BYTES * 2) res.once('drain', pump)
      else res.end('{}')
    }
    pump()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

after(() => { server.closeAllConnections(); server.close() })

async function refusal (path: string, timeout: string): Promise<{ message: string; ms: number }> {
  const client = new AdminClient({ admin: base, tokenFile: '', timeout })
  const started = Date.now()
  try {
    await client.get(path, STATE_ANSWER)
  } catch (err) {
    assert.ok(err instanceof AdminClientError, `not an AdminClientError: ${String(err)}`)
    return { message: err.message, ms: Date.now() - started }
  }
  assert.fail(`GET ${path} succeeded`)
}

test('a node that stalls halfway through its answer: a clear error within the timeout, naming the route', async () => {
  const { message, ms } = await refusal('/drip', '0.5')
  assert.match(message, /^GET http:\/\/127\.0\.0\.1:\d+\/drip: HTTP 200, but the answer did not arrive whole \(.*--timeout 0\.5 s\)/)
  assert.ok(ms < 5000, `took ${ms} ms`)
})

test('an answer without end is cut at MAX_ANSWER_BYTES, not read into memory whole', async () => {
  const { message } = await refusal('/endless', '20')
  assert.match(message, /^GET http:\/\/127\.0\.0\.1:\d+\/endless: HTTP 200 with an answer larger than 64 MiB, not read further/)
  // The client hung up soon after the bound (socket buffers aside), instead of taking it all.
  const sent = await endlessSent
  assert.ok(sent < MAX_ANSWER_BYTES * 1.5, `the server sent ${sent} bytes`)
})
