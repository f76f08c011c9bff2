import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { runCli } from '../helpers/agent.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { writeFarmSecret } from '../helpers/farm.js'

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const HAPROXY_DIR = path.join(REPO_ROOT, 'haproxy')

const configs = fs.readdirSync(HAPROXY_DIR, { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('.cfg'))
  .map((file) => path.join(HAPROXY_DIR, file))
  .sort()

test('haproxy/ holds the farm config', () => {
  assert.ok(configs.includes(path.join(HAPROXY_DIR, 'haproxy.cfg')), `found: ${configs.join(', ')}`)
})

/**
 * A config naming files under /etc/haproxy/ (the node-side one: its certificate and its
 * tls-ticket-keys file) is checked with those paths moved to a temporary directory holding a
 * real certificate and a key file written by the real `tlsfleet haproxy-keys`.
 */
async function checkable (file: string): Promise<string> {
  const text = fs.readFileSync(file, 'utf8')
  const code = text.split('\n').map((line) => line.replace(/#.*$/, '')).join('\n')
  if (!code.includes('/etc/haproxy/')) return file
  const dir = tempDir()
  const files = [...new Set([...code.matchAll(/\/etc\/haproxy\/(\S+)/g)].map((m) => m[1] as string))]
  for (const name of files) {
    if (name.endsWith('.pem')) fs.renameSync(makeCertificate(dir, 'site', ['localhost']), path.join(dir, name))
    else {
      const made = await runCli(['haproxy-keys', '--sync-secret-file', writeFarmSecret(dir), '--out', path.join(dir, name)])
      assert.equal(made.code, 0, made.stderr)
    }
  }
  const copy = path.join(dir, path.basename(file))
  fs.writeFileSync(copy, text.replaceAll('/etc/haproxy/', `${dir}/`))
  return copy
}

for (const file of configs) {
  test(`haproxy -c accepts ${path.relative(REPO_ROOT, file)}`, async () => {
    const result = spawnSync('haproxy', ['-c', '-f', await checkable(file)], { encoding: 'utf8', timeout: 15_000 })
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
    'stick match req.payload_lv(43,1) if clienthello',
    'stick store-response res.payload_lv(43,1) if serverhello !sid32 || serverhello !tls13suite',
    'stats socket /run/haproxy/admin.sock mode 660 level admin',
    'stats socket ipv4@127.0.0.1:9999 level admin'
  ]) assert.ok(code.includes(line), `missing: ${line}`)
})

test('node-side config: TLS with the farm ticket key file, PROXY in and out, an admin socket for the companion', () => {
  const text = fs.readFileSync(path.join(HAPROXY_DIR, 'haproxy-node.cfg'), 'utf8')
  const code = text.split('\n').map((line) => line.replace(/#.*$/, '').trim()).filter((line) => line !== '')
  const bind = code.find((line) => line.startsWith('bind ')) ?? ''
  for (const word of [/ accept-proxy\b/, / ssl crt \S+/, / tls-ticket-keys \/etc\/haproxy\/tls-ticket-keys\b/]) assert.match(bind, word)
  assert.ok(code.includes('stats socket /run/haproxy/node.sock mode 600 level admin'))
  assert.match(code.find((line) => line.startsWith('server ')) ?? '', /\bsend-proxy-v2\b/)
  // The companion command in the comments uses the same paths.
  assert.match(text, /--terminator-socket \/run\/haproxy\/node\.sock/)
  assert.match(text, /--terminator-keys \/etc\/haproxy\/tls-ticket-keys/)
  assert.match(text, /haproxy-keys --sync-secret-file \S+ --out \/etc\/haproxy\/tls-ticket-keys/)
})
