import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { runCli } from '../helpers/agent.js'

/**
 * `tlsfleet status|drain` pointed at something that is not a tlsfleet node but answers JSON
 * (a wrong --admin port): the real CLI against a real HTTP server on loopback. Before, status
 * died on `Cannot read properties of undefined`, and drain printed "already undefined" and
 * exited 0, so a script went on as if the node were drained.
 */

let server: http.Server
let base: string
/** What the server answers to every request, set by each test. */
let answer = '{}'

before(async () => {
  server = http.createServer((req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(answer)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

after(() => { server.closeAllConnections(); server.close() })

test('drain against a service that answers {}: exit 1, naming the missing field, never "already"', async () => {
  answer = '{}'
  const r = await runCli(['drain', '--admin', base, '--token-file', ''])
  assert.equal(r.code, 1, r.stderr)
  assert.equal(r.stdout, '')
  assert.match(r.stderr, /PUT http:\/\/127\.0\.0\.1:\d+\/v1\/state: HTTP 200, but not a tlsfleet node's answer \(state: .*\); is --admin a tlsfleet node's admin API\? \(TLSFLEET_ERR_ADMIN_CLIENT\)/)
})

test('drain answered with another state than the one asked for: exit 1, saying what the node answered', async () => {
  answer = JSON.stringify({ state: 'ready', previous: 'ready', changed: false })
  const r = await runCli(['drain', '--admin', base, '--token-file', ''])
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, /asked for drain, but the node answered that it is ready/)
})

test('status against a service that answers {} or null: exit 1, a clear error instead of a TypeError', async () => {
  // The routes are asked at once: whichever answer is read first is the one named.
  for (const [body, field] of [['{}', '(node|l2|sync)'], ['null', 'the answer'], ['[]', 'the answer']] as const) {
    answer = body
    const r = await runCli(['status', '--admin', base, '--token-file', ''])
    assert.equal(r.code, 1, r.stderr)
    assert.doesNotMatch(r.stderr, /unexpected error|Cannot read properties/, r.stderr)
    assert.match(r.stderr, new RegExp(`/v1/(state|cache|peers): HTTP 200, but not a tlsfleet node's answer \\(${field}: `))
  }
})
