import assert from 'node:assert/strict'
import { test } from 'node:test'
import { conflictMessage as refused } from '../helpers/config-conflict.js'
import { loadConfig } from '../../src/config/load.js'
import { checkOptionCombinations } from '../../src/config/node-checks.js'
import { ConfigError } from '../../src/errors.js'

const haproxyMode = { terminator: 'haproxy', 'terminator-socket': '/run/haproxy/node.sock', 'terminator-keys': '/etc/haproxy/tickets.key', 'sync-secret-file': ['/etc/tlsfleet/farm.key'] }

test('--terminator haproxy with its socket, key file and farm secret is accepted; tlsfleet is the default', () => {
  assert.equal(loadConfig({ env: {} }).terminator, 'tlsfleet')
  checkOptionCombinations(loadConfig({ env: {}, flags: haproxyMode }))
  checkOptionCombinations(loadConfig({ env: {}, flags: { ...haproxyMode, 'session-id-context': 'haproxy', 'terminator-socket': '127.0.0.1:9999' } }))
  const fromEnv = loadConfig({ env: { TLSFLEET_TERMINATOR: 'haproxy', TLSFLEET_TERMINATOR_SOCKET: 'ipv4@127.0.0.1:9999', TLSFLEET_TERMINATOR_KEYS: '/k', TLSFLEET_TERMINATOR_FRONTEND: 'tls_in,tls_alt' } })
  assert.deepEqual([fromEnv.terminator, fromEnv.terminatorSocket, fromEnv.terminatorKeys, fromEnv.terminatorFrontend], ['haproxy', 'ipv4@127.0.0.1:9999', '/k', ['tls_in', 'tls_alt']])
})

test('each missing or conflicting option of the HAProxy mode is named, with what to give', () => {
  // Left out (undefined), not given empty: an empty value is refused when loaded, before any check.
  assert.match(refused({ ...haproxyMode, 'terminator-socket': undefined }), /needs --terminator-socket PATH\|HOST:PORT/)
  assert.match(refused({ ...haproxyMode, 'terminator-keys': undefined }), /needs --terminator-keys KEYFILE: .*tlsfleet haproxy-keys/)
  assert.match(refused({ ...haproxyMode, 'sync-secret-file': undefined }), /needs --sync-secret-file/)
  assert.match(refused({ ...haproxyMode, 'terminator-keys': 'tickets.key' }), /--terminator-keys tickets\.key: give an absolute path, on the HAProxy bind line too/)
  assert.match(refused({ ...haproxyMode, 'session-tickets': 'off' }), /--session-tickets off does not go with --terminator haproxy/)
  assert.match(refused({ ...haproxyMode, 'sync-format': 'stud' }), /--sync-format stud does not go with --terminator haproxy/)
  assert.match(refused({ ...haproxyMode, cert: ['/etc/site.pem'] }), /--cert does not go with --terminator haproxy/)
  assert.match(refused({ ...haproxyMode, sigalgs: 'ECDSA+SHA256' }), /--sigalgs only apply with --terminator tlsfleet: with --terminator haproxy, TLS is set on the local HAProxy's bind line/)
  assert.match(refused({ ...haproxyMode, 'crt-list': ['/etc/haproxy/list.txt'] }), /--crt-list only apply with --terminator tlsfleet: with --terminator haproxy, TLS is set on the local HAProxy's bind line/)
  assert.match(refused({ ...haproxyMode, 'session-id-context': 'myfarm' }), /HAProxy always uses "haproxy"; give --session-id-context haproxy to every tlsfleet-terminated node/)
  assert.match(refused({ 'terminator-socket': '/run/haproxy/node.sock', 'terminator-frontend': ['fe'] }), /--terminator-socket, --terminator-frontend only apply with --terminator haproxy/)
})

test('bad values of the terminator options are refused by name', () => {
  assert.throws(() => loadConfig({ env: {}, flags: { terminator: 'nginx' } }), (err: unknown) => err instanceof ConfigError && /"terminator": expected one of tlsfleet, haproxy/.test(err.message))
  assert.throws(() => loadConfig({ env: {}, flags: { 'terminator-socket': 'nowhere' } }), /"terminator-socket": expected a socket path or HOST:PORT/)
  assert.throws(() => loadConfig({ env: {}, flags: { 'terminator-keys': '/etc/my keys' } }), /"terminator-keys": expected a file path without whitespace or ";" \(contains whitespace/)
  assert.throws(() => loadConfig({ env: {}, flags: { 'terminator-frontend': ['a b'] } }), /"terminator-frontend"/)
})
