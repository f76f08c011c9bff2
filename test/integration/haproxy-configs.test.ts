import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const HAPROXY_DIR = path.join(REPO_ROOT, 'haproxy')

const configs = fs.readdirSync(HAPROXY_DIR, { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('.cfg'))
  .map((file) => path.join(HAPROXY_DIR, file))
  .sort()

test('haproxy/ holds the farm config', () => {
  assert.ok(configs.includes(path.join(HAPROXY_DIR, 'haproxy.cfg')), `found: ${configs.join(', ')}`)
})

for (const file of configs) {
  test(`haproxy -c accepts ${path.relative(REPO_ROOT, file)}`, () => {
    const result = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8', timeout: 15_000 })
    assert.equal(result.error, undefined)
    assert.equal(result.status, 0, `haproxy -c failed:\n${result.stdout}\n${result.stderr}`)
    assert.match(result.stdout + result.stderr, /Configuration file is valid/)
  })
}

test('farm config: every node has weight 100, PROXY v2, a check and the agent', () => {
  const text = fs.readFileSync(path.join(HAPROXY_DIR, 'haproxy.cfg'), 'utf8')
  const code = text.split('\n').map((line) => line.replace(/#.*$/, '').trim()).filter((line) => line !== '')
  const defaults = code.find((line) => line.startsWith('default-server ')) ?? ''
  const servers = code.filter((line) => line.startsWith('server '))
  assert.deepEqual(servers.map((line) => line.split(/\s+/)[1]), ['node1', 'node2', 'node3'])
  for (const server of servers) {
    const options = `${defaults} ${server}`
    for (const word of [/\bweight 100\b/, /\bsend-proxy-v2\b/, /\bcheck\b/, /\bagent-check\b/, /\bagent-port 8444\b/, /agent-send "hello\\n"/]) {
      assert.match(options, word, server)
    }
    assert.match(server, /:8443$/)
  }
  for (const line of [
    'stick-table type binary len 32 size 30k expire 30m',
    'tcp-response inspect-delay 5s',
    'stick on req.payload_lv(43,1) if clienthello',
    'stick store-response res.payload_lv(43,1) if serverhello',
    'stats socket /run/haproxy/admin.sock mode 660 level admin',
    'stats socket ipv4@127.0.0.1:9999 level admin'
  ]) assert.ok(code.includes(line), `missing: ${line}`)
})
