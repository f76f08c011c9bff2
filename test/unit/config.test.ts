import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { conflictMessage as conflict } from '../helpers/config-conflict.js'
import { parseHostPort } from '../../src/config/host-port.js'
import { loadConfig, unknownEnvironmentVariables } from '../../src/config/load.js'
import { checkOptionCombinations } from '../../src/config/node-checks.js'
import { ConfigConflictError, ConfigError } from '../../src/errors.js'
import { OPTION_KEYS, OPTIONS, envName } from '../../src/config/options.js'
import { tempDir } from '../helpers/certs.js'

test('defaults need no input', () => {
  const config = loadConfig({ env: {} })
  assert.deepEqual(config.listen, [{ host: '127.0.0.1', port: 8443 }])
  assert.equal(config.backend, 'demo')
  assert.equal(config.sessionTimeout, 300)
  assert.equal(config.sessionIdContext, '', 'not given: each certificate its own')
  assert.ok(config.workers >= 1)
})

test('flags win over env, env wins over the file, for every kind of value', () => {
  const file = path.join(tempDir(), 'node.yaml')
  fs.writeFileSync(file, 'session-timeout: 100\nworkers: 3\nlisten: ["127.0.0.1:1000", "[::1]:1001"]\nsession-id-context: filectx\n')
  const fromFile = loadConfig({ env: {}, file })
  assert.equal(fromFile.sessionTimeout, 100)
  assert.deepEqual(fromFile.listen, [{ host: '127.0.0.1', port: 1000 }, { host: '::1', port: 1001 }])
  const withEnv = loadConfig({ env: { TLSFLEET_SESSION_TIMEOUT: '200', TLSFLEET_LISTEN: '127.0.0.2:2000, 127.0.0.3:2001' }, file })
  assert.equal(withEnv.sessionTimeout, 200)
  assert.equal(withEnv.workers, 3)
  assert.deepEqual(withEnv.listen, [{ host: '127.0.0.2', port: 2000 }, { host: '127.0.0.3', port: 2001 }])
  const withFlags = loadConfig({ flags: { 'session-timeout': '400', listen: [':3000'] }, env: { TLSFLEET_SESSION_TIMEOUT: '200' }, file })
  assert.equal(withFlags.sessionTimeout, 400)
  assert.deepEqual(withFlags.listen, [{ host: '0.0.0.0', port: 3000 }])
  assert.equal(withFlags.sessionIdContext, 'filectx')
})

test('every option has an environment variable and a YAML key of the same name', () => {
  const file = path.join(tempDir(), 'all.yaml')
  fs.writeFileSync(file, 'session-id-context: x\n')
  for (const key of OPTION_KEYS) {
    assert.match(envName(key), /^TLSFLEET_[A-Z0-9_]+$/)
  }
  assert.equal(loadConfig({ env: {}, file }).sessionIdContext, 'x')
})

test('every problem is reported at once, each naming key, value and expectation', () => {
  try {
    loadConfig({ env: { TLSFLEET_WORKERS: '0', TLSFLEET_SESSION_ID_CONTEXT: 'x'.repeat(33) }, flags: { backend: 'nowhere' } })
    assert.fail('expected a ConfigError')
  } catch (err) {
    assert.ok(err instanceof ConfigError)
    assert.equal(err.problems.length, 3)
    assert.match(err.message, /TLSFLEET_WORKERS: "0" is not valid for "workers": expected an integer from 1 to 256/)
    assert.match(err.message, /TLSFLEET_SESSION_ID_CONTEXT: .* is not valid for "session-id-context": expected a string of 1 to 32 bytes/)
    assert.match(err.message, /--backend: "nowhere" is not valid for "backend": expected HOST:PORT or "demo"/)
  }
})

test('a YAML file that is not a mapping, or not YAML, is refused with its path', () => {
  const dir = tempDir()
  const list = path.join(dir, 'list.yaml')
  fs.writeFileSync(list, '- a\n- b\n')
  assert.throws(() => loadConfig({ env: {}, file: list }), /list\.yaml: expected a mapping/)
  const broken = path.join(dir, 'broken.yaml')
  fs.writeFileSync(broken, 'workers: [1\n')
  assert.throws(() => loadConfig({ env: {}, file: broken }), /broken\.yaml: not valid YAML/)
})

test('options that do not go together are named as they were given: flag, TLSFLEET_* variable or YAML key', () => {
  const refusal = (sources: Parameters<typeof loadConfig>[0]): string => {
    try {
      checkOptionCombinations(loadConfig(sources))
    } catch (err) {
      assert.ok(err instanceof ConfigConflictError)
      return err.message
    }
    return assert.fail('expected a ConfigConflictError')
  }
  const advice = 'give --admin-token-file with a bearer token'
  assert.ok(refusal({ flags: { 'admin-listen': '0.0.0.0:8445' }, env: {} }).startsWith(`--admin-listen 0.0.0.0:8445 is not a loopback address: ${advice}`))
  // A compose file sets variables: the message names the variable (the option left out stays a flag).
  assert.ok(refusal({ env: { TLSFLEET_ADMIN_LISTEN: '0.0.0.0:8445' } }).startsWith(`TLSFLEET_ADMIN_LISTEN 0.0.0.0:8445 is not a loopback address: ${advice}`))
  const dir = tempDir()
  const file = path.join(dir, 'node.yaml')
  fs.writeFileSync(file, 'max-connections: 100\nmaxconn: 200\n')
  assert.equal(refusal({ env: {}, file }), `${file} key "maxconn" 200 (what the agent tells HAProxy) is above ${file} key "max-connections" 100 (what the node admits): HAProxy would send connections the node refuses; leave ${file} key "maxconn" at 0 and the agent sends a value below ${file} key "max-connections"`)
})

test('HOST:PORT parsing', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:443'), { host: '127.0.0.1', port: 443 })
  assert.deepEqual(parseHostPort('[::1]:443'), { host: '::1', port: 443 })
  assert.deepEqual(parseHostPort('node-1.example:8443'), { host: 'node-1.example', port: 8443 })
  assert.deepEqual(parseHostPort(':80'), { host: '0.0.0.0', port: 80 })
  assert.equal(typeof parseHostPort('::1:443'), 'string')
  assert.equal(typeof parseHostPort('[zz]:443'), 'string')
  assert.equal(typeof parseHostPort('host:70000'), 'string')
  assert.equal(typeof parseHostPort('host:0'), 'string')
  assert.deepEqual(parseHostPort('host:0', { allowPortZero: true }), { host: 'host', port: 0 })
  assert.equal(typeof parseHostPort('host'), 'string')
  // hitch's frontend = "[*]:443": said how to write it here.
  assert.match(parseHostPort('[*]:443') as string, /written \[::\]:PORT here .* or 0\.0\.0\.0:PORT/)
})

test('list options take repeated flags, comma-separated text or YAML lists alike', () => {
  assert.deepEqual(loadConfig({ env: {}, flags: { alpn: ['h2,http/1.1'] } }).alpn, ['h2', 'http/1.1'])
  assert.deepEqual(loadConfig({ env: {}, flags: { alpn: ['h2', 'http/1.1'] } }).alpn, ['h2', 'http/1.1'])
  assert.deepEqual(loadConfig({ env: { TLSFLEET_ALPN: 'h2, http/1.1' } }).alpn, ['h2', 'http/1.1'])
  const file = path.join(tempDir(), 'tls.yaml')
  fs.writeFileSync(file, 'alpn: [h2, "http/1.1"]\nproxy-tlv: alpn,ssl\n')
  const fromFile = loadConfig({ env: {}, file })
  assert.deepEqual(fromFile.alpn, ['h2', 'http/1.1'])
  assert.deepEqual(fromFile.proxyTlv, ['alpn', 'ssl'])
  assert.deepEqual(loadConfig({ env: {} }).proxyTlv, ['alpn', 'authority'])
  assert.throws(() => loadConfig({ env: {}, flags: { 'proxy-tlv': ['none,ssl'] } }), /"proxy-tlv": expected a comma-separated list of alpn, authority, ssl, crc32c, or none \(none cannot be combined/)
  assert.throws(() => loadConfig({ env: {}, flags: { 'proxy-tlv': ['unique-id'] } }), /--proxy-tlv: \["unique-id"\] is not valid/)
  assert.deepEqual(loadConfig({ env: {}, flags: { 'proxy-tlv': ['alpn,crc32c'] } }).proxyTlv, ['alpn', 'crc32c'])
  assert.throws(() => loadConfig({ env: {}, flags: { alpn: ['h2,has space'] } }), /"alpn": expected protocol names of 1 to 255 printable ASCII characters/)
  assert.throws(() => loadConfig({ env: { TLSFLEET_TLS_MIN_VERSION: 'TLSv1.4' } }), /TLSFLEET_TLS_MIN_VERSION: "TLSv1.4" is not valid for "tls-min-version": expected one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3/)
})

test('TLS options that do not work together are refused before anything starts', () => {
  assert.match(conflict({ workers: 4, 'max-handshakes-per-source': 2 }), /--max-handshakes-per-source 2 is split over 4 workers \(each admits at least one per source, so a source would get 4\): give at least one per worker/)
  assert.match(conflict({ 'admin-allow-unauthenticated': 'on', 'admin-token-file': 'admin.token' }), /--admin-allow-unauthenticated on would let state changes through without the token --admin-token-file admin\.token requires: give one or the other/)
  assert.match(conflict({ 'admin-allow-unauthenticated': 'on', 'admin-token-file': 'admin.token', 'admin-listen': '0.0.0.0:8445' }), /--admin-allow-unauthenticated on would let state changes through/)
  assert.match(conflict({ 'client-verify': 'require' }), /--client-verify require needs --client-ca/)
  assert.match(conflict({ 'client-ca': 'ca.pem' }), /--client-ca has no effect with --client-verify none/)
  assert.match(conflict({ 'client-verify': 'optional', 'client-ca': 'ca.pem', crl: 'x.pem', 'proxy-tlv': ['ssl'] }), /--proxy-tlv ssl needs --proxy-protocol-out v2/)
  assert.match(conflict({ 'proxy-tlv': ['alpn', 'crc32c'], 'proxy-protocol-out': 'v1' }), /--proxy-tlv crc32c needs --proxy-protocol-out v2 \(TLVs exist only in PROXY protocol v2; it is v1\)/)
  assert.match(conflict({ group: 'nogroup' }), /--group needs --user/)
  assert.match(conflict({ terminator: 'haproxy', 'terminator-socket': '/run/haproxy.sock', 'terminator-keys': '/k', 'sync-secret-file': ['/s'], alpn: ['h2'], user: 'nobody' }),
    /--alpn, --user only apply with --terminator tlsfleet: with --terminator haproxy, TLS is set on the local HAProxy's bind line/)
  assert.doesNotThrow(() => checkOptionCombinations(loadConfig({ env: {}, flags: { 'client-verify': 'optional', 'client-ca': 'ca.pem', 'proxy-tlv': ['ssl'], 'proxy-protocol-out': 'v2' } })))
  assert.doesNotThrow(() => checkOptionCombinations(loadConfig({ env: {}, flags: { 'proxy-tlv': ['crc32c'], 'proxy-protocol-out': 'v2' } })))
})

test('--sync-cipher with --sync-format stud is refused (hitch\'s format has no cipher); the default cipher, or v2, is not', () => {
  assert.throws(() => checkOptionCombinations(loadConfig({ env: {}, flags: { 'sync-format': 'stud', 'sync-cipher': 'aes-256-gcm' } })),
    (err: Error) => err instanceof ConfigConflictError && /^--sync-cipher aes-256-gcm has no effect with --sync-format stud/.test(err.message))
  assert.doesNotThrow(() => checkOptionCombinations(loadConfig({ env: {}, flags: { 'sync-format': 'stud' } })))
  assert.doesNotThrow(() => checkOptionCombinations(loadConfig({ env: {}, flags: { 'sync-format': 'v2', 'sync-cipher': 'aes-256-gcm' } })))
})

test('--cache-miss-wait must be below --cache-get-timeout', () => {
  const config = loadConfig({ env: {}, flags: { 'cache-miss-wait': '25', 'cache-get-timeout': '25' } })
  assert.throws(() => checkOptionCombinations(config), (err: Error) => err instanceof ConfigConflictError && /--cache-miss-wait 25 must be below --cache-get-timeout 25/.test(err.message))
  assert.doesNotThrow(() => checkOptionCombinations(loadConfig({ env: {} })))
})

test('--tcp-keepalive: whole seconds, 0 (off) by default, below --idle-timeout, and only where the node\'s workers hold the sockets', () => {
  assert.equal(loadConfig({ env: {} }).tcpKeepalive, 0)
  assert.equal(loadConfig({ env: { TLSFLEET_TCP_KEEPALIVE: '60' } }).tcpKeepalive, 60)
  assert.equal(loadConfig({ env: {}, flags: { 'tcp-keepalive': '3600', 'idle-timeout': '7200' } }).tcpKeepalive, 3600)
  for (const bad of ['-1', '32768', '1.5', 'on']) {
    assert.throws(() => loadConfig({ env: {}, flags: { 'tcp-keepalive': bad } }), (err: Error) => err instanceof ConfigError && /--tcp-keepalive: .* is not valid for "tcp-keepalive": expected an integer number of seconds from 0 to 32767/.test(err.message), bad)
  }
  // hitch's default (3600) under the default --idle-timeout (300) would never probe.
  assert.match(conflict({ 'tcp-keepalive': '3600' }), /--tcp-keepalive 3600 would never send a probe: --idle-timeout 300 closes a connection silent that long first/)
  assert.doesNotThrow(() => checkOptionCombinations(loadConfig({ env: {}, flags: { 'tcp-keepalive': '60' } })))
  assert.match(conflict({ terminator: 'haproxy', 'terminator-socket': '/run/haproxy.sock', 'terminator-keys': '/k', 'sync-secret-file': ['/s'], 'tcp-keepalive': '60' }),
    /--tcp-keepalive only applies with --terminator tlsfleet: .*option clitcpka, option srvtcpka/)
})

test('numeric options take YAML numbers and decimal text only: no booleans, blanks, hex, binary, octal or exponents', () => {
  const file = path.join(tempDir(), 'numbers.yaml')
  fs.writeFileSync(file, 'workers: 3\nhandshake-timeout: 0.5\nmax-connections: "16"\n')
  const fromFile = loadConfig({ env: {}, file })
  assert.deepEqual([fromFile.workers, fromFile.handshakeTimeout, fromFile.maxConnections], [3, 0.5, 16])
  const fromText = loadConfig({ env: { TLSFLEET_GRACE_PERIOD: '2.5', TLSFLEET_IDLE_TIMEOUT: ' 1000 ' }, flags: { workers: '2' } })
  assert.deepEqual([fromText.gracePeriod, fromText.idleTimeout, fromText.workers], [2.5, 1000, 2])

  fs.writeFileSync(file, 'workers: true\n')
  assert.match(configRefusal({ env: {}, file }), /numbers\.yaml key "workers": true is not valid for "workers": expected an integer from 1 to 256 \(a boolean, not a number\)/)
  fs.writeFileSync(file, 'max-connections: "0x10"\n')
  assert.match(configRefusal({ env: {}, file }), /key "max-connections": "0x10" is not valid for "max-connections": expected an integer from 0 to 10000000 \(not an integer in decimal digits\)/)
  assert.equal(configRefusal({ env: { TLSFLEET_GRACE_PERIOD: '' } }), 'TLSFLEET_GRACE_PERIOD: empty for "grace-period" (expected a number of seconds from 0 to 3600; give a value or unset the variable)')
  assert.match(configRefusal({ env: { TLSFLEET_GRACE_PERIOD: '  ' } }), /^TLSFLEET_GRACE_PERIOD: blank \(" {2}"\) for "grace-period"/)
  assert.match(configRefusal({ env: { TLSFLEET_MAX_CONNECTIONS: '' } }), /TLSFLEET_MAX_CONNECTIONS: empty for "max-connections"/)
  assert.match(configRefusal({ env: { TLSFLEET_HANDSHAKE_TIMEOUT: '0b11' } }), /TLSFLEET_HANDSHAKE_TIMEOUT: "0b11" is not valid for "handshake-timeout"/)
  assert.match(configRefusal({ env: { TLSFLEET_IDLE_TIMEOUT: '1e3' } }), /TLSFLEET_IDLE_TIMEOUT: "1e3" is not valid for "idle-timeout"/)
  assert.match(configRefusal({ env: {}, flags: { 'session-timeout': '0o17' } }), /--session-timeout: "0o17" is not valid/)
  assert.match(configRefusal({ env: {}, flags: { workers: '1.5' } }), /--workers: "1.5" is not valid for "workers": expected an integer from 1 to 256 \(not an integer in decimal digits\)/)
  // zod's own words for a bound ("Too small: expected number to be >=0") only repeated the expected range.
  assert.equal(configRefusal({ env: {}, flags: { 'grace-period': '-1' } }), '--grace-period: "-1" is not valid for "grace-period": expected a number of seconds from 0 to 3600')
})

/** The ConfigError message of loading `sources`; fails the test if they are accepted. */
function configRefusal (sources: Parameters<typeof loadConfig>[0]): string {
  try {
    loadConfig(sources)
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    return err.message
  }
  assert.fail(`accepted ${JSON.stringify(sources)}`)
}

/** The ConfigError message of loading `yaml` written to `file`; fails the test if it is accepted. */
function yamlRefusal (file: string, yaml: string): string {
  fs.writeFileSync(file, yaml)
  return configRefusal({ env: {}, file })
}

test('YAML numbers follow the decimal rule of flags and env vars, and refusals quote them as written', () => {
  const file = path.join(tempDir(), 'forms.yaml')
  const refusal = (yaml: string): string => yamlRefusal(file, yaml)
  assert.match(refusal('workers: 0x10\n'), /key "workers": "0x10" is not valid for "workers": expected an integer from 1 to 256 \(not an integer in decimal digits\)/)
  assert.match(refusal('workers: 0o7\n'), /key "workers": "0o7" is not valid/)
  assert.match(refusal('workers: +12\n'), /key "workers": "\+12" is not valid/)
  assert.match(refusal('workers: 1e3\n'), /key "workers": "1e3" is not valid for "workers": expected an integer from 1 to 256 \(not an integer in decimal digits\)/)
  assert.match(refusal('grace-period: 1.0e+1\n'), /key "grace-period": "1\.0e\+1" is not valid for "grace-period": expected a number of seconds from 0 to 3600 \(not a decimal number/)
  assert.match(refusal('grace-period: .5\n'), /key "grace-period": "\.5" is not valid/)
  // Decimal numbers still read as before, plain or quoted, and a number given for text is that text.
  fs.writeFileSync(file, 'workers: 007\ngrace-period: 2.50\nnode-id: 1.50\n')
  const config = loadConfig({ env: {}, file })
  assert.deepEqual([config.workers, config.gracePeriod, config.nodeId], [7, 2.5, '1.50'])
})

test('a key given without a value is refused, never the default: YAML null or [], empty or blank text and env vars', () => {
  const file = path.join(tempDir(), 'empty.yaml')
  const yaml = (text: string): string => {
    fs.writeFileSync(file, text)
    return configRefusal({ env: {}, file })
  }
  assert.equal(yaml('workers:\n'), `${file} key "workers": empty for "workers" (expected an integer from 1 to 256; give a value or remove the key)`)
  assert.match(yaml('workers: ~\n'), /key "workers": empty for "workers"/)
  assert.match(yaml('cert:\n'), /key "cert": empty for "cert" \(expected a file path; give a value or remove the key\)/)
  assert.match(yaml('cert: []\n'), /key "cert": an empty list for "cert"/)
  assert.match(yaml('cert: [a.pem, ""]\n'), /key "cert": an empty item \(item 2 of 2\) for "cert" \(expected a file path; remove the empty item\)$/)
  assert.match(yaml('listen:\n'), /key "listen": empty for "listen" \(expected HOST:PORT;/)
  assert.match(yaml('ciphers: ""\n'), /key "ciphers": empty for "ciphers"/)
  assert.match(configRefusal({ env: { TLSFLEET_CERT: '' } }), /^TLSFLEET_CERT: empty for "cert" \(expected a file path; give a value or unset the variable\)$/)
  assert.match(configRefusal({ env: { TLSFLEET_CERT: ' , ' } }), /^TLSFLEET_CERT: an empty list for "cert"/)
  assert.match(configRefusal({ env: { TLSFLEET_STATE_DIR: ' ' } }), /^TLSFLEET_STATE_DIR: blank \(" "\) for "state-dir"/)
  assert.match(configRefusal({ env: { TLSFLEET_SESSION_ID_CONTEXT: ' ' } }), /^TLSFLEET_SESSION_ID_CONTEXT: blank/)
  assert.match(configRefusal({ env: { TLSFLEET_PROXY_TLV: '' } }), /^TLSFLEET_PROXY_TLV: empty for "proxy-tlv"/)
  assert.match(configRefusal({ env: {}, flags: { 'tls-min-version': '' } }), /^--tls-min-version: empty for "tls-min-version" \(expected one of TLSv1, TLSv1\.1, TLSv1\.2, TLSv1\.3; give a value or drop the flag\)$/)
  assert.match(configRefusal({ env: {}, flags: { 'prefer-server-ciphers': '' } }), /^--prefer-server-ciphers: empty/)
  assert.match(configRefusal({ env: {}, flags: { cert: [''] } }), /^--cert: an empty item \(item 1 of 1\) for "cert"/)
  // A variable's list with a blank item (an extra comma) is refused, not read without it.
  assert.equal(configRefusal({ env: { TLSFLEET_LISTEN: '127.0.0.1:8443,,127.0.0.1:8444' } }), 'TLSFLEET_LISTEN: an empty item (item 2 of 3 in "127.0.0.1:8443,,127.0.0.1:8444") for "listen" (expected HOST:PORT; remove the empty item)')
  assert.match(configRefusal({ env: { TLSFLEET_CERT: 'a.pem, ' } }), /^TLSFLEET_CERT: an empty item \(item 2 of 2 in "a\.pem, "\) for "cert"/)
  assert.match(configRefusal({ env: { TLSFLEET_SYNC_PEER: ',127.0.0.1:8500' } }), /^TLSFLEET_SYNC_PEER: an empty item \(item 1 of 2 in ",127\.0\.0\.1:8500"\) for "sync-peer"/)
  assert.match(configRefusal({ env: { TLSFLEET_ALPN: 'h2, ,http/1.1' } }), /^TLSFLEET_ALPN: an empty item \(item 2 of 3/)
  // The same within one flag's or YAML value's comma-separated text.
  assert.equal(configRefusal({ env: {}, flags: { alpn: ['h2,,http/1.1'] } }), '--alpn: ["h2,,http/1.1"] is not valid for "alpn": expected ' + OPTIONS.alpn.expected + ' (an empty item, item 2 of 3: remove the extra comma)')
  assert.match(yaml('proxy-tlv: "alpn,"\n'), /key "proxy-tlv": "alpn," is not valid for "proxy-tlv": .*\(an empty item, item 2 of 2: remove the extra comma\)$/)
  assert.deepEqual(loadConfig({ env: {}, flags: { alpn: ['h2, http/1.1'] } }).alpn, ['h2', 'http/1.1'])
  assert.deepEqual(loadConfig({ env: { TLSFLEET_LISTEN: '127.0.0.1:8443, 127.0.0.1:8444' } }).listen.map((l) => l.port), [8443, 8444])
  // TLSFLEET_SYNC_PEER="" is how the compose overrides clear the base file's peers: "none".
  assert.deepEqual(loadConfig({ env: { TLSFLEET_SYNC_PEER: '' } }).syncPeer, [])
  // Text is trimmed wherever it comes from, enums as numbers and addresses always were.
  const spaced = loadConfig({ env: { TLSFLEET_TLS_PROFILE: ' modern', TLSFLEET_STATE_DIR: ' /var/lib/tlsfleet ', TLSFLEET_WORKERS: ' 2 ' }, flags: { 'log-format': 'json ' } })
  assert.deepEqual([spaced.tlsProfile, spaced.stateDir, spaced.workers, spaced.logFormat], ['modern', '/var/lib/tlsfleet', 2, 'json'])
})

test('a refusal shows Infinity and NaN as such, and names a mapping a mapping', () => {
  assert.equal(configRefusal({ env: {}, flags: { workers: Infinity } }), '--workers: Infinity is not valid for "workers": expected an integer from 1 to 256 (Infinity, not a finite number)')
  assert.equal(configRefusal({ env: {}, flags: { 'grace-period': -Infinity } }), '--grace-period: -Infinity is not valid for "grace-period": expected a number of seconds from 0 to 3600 (-Infinity, not a finite number)')
  assert.match(configRefusal({ env: {}, flags: { workers: NaN } }), /^--workers: NaN is not valid for "workers": .*\(NaN, not a finite number\)$/)
  const file = path.join(tempDir(), 'kinds.yaml')
  fs.writeFileSync(file, 'workers: .inf\ngrace-period: -.inf\nmax-connections: {a: 1}\n')
  const message = configRefusal({ env: {}, file })
  assert.match(message, /key "workers": "\.inf" is not valid for "workers": expected an integer from 1 to 256 \(not an integer in decimal digits\)/)
  assert.match(message, /key "grace-period": "-\.inf" is not valid for "grace-period": expected a number of seconds from 0 to 3600 \(not a decimal number/)
  assert.match(message, /key "max-connections": \{"a":"1"\} is not valid for "max-connections": expected an integer from 0 to 10000000 \(a mapping, not a number\)/)
})

test('an unknown YAML key names the closest known key, not all of them; a YAML tag warning is a refusal', () => {
  const file = path.join(tempDir(), 'typo.yaml')
  const refusal = (yaml: string): string => yamlRefusal(file, yaml)
  assert.equal(refusal('sesion-timeout: 5\n'), `${file}: unknown key "sesion-timeout" (did you mean "session-timeout"? tlsfleet node --help lists the keys)`)
  assert.match(refusal('session_id_context: x\n'), /unknown key "session_id_context" \(did you mean "session-id-context"\?/)
  assert.match(refusal('graceПериод: 1\n'), /unknown key "graceПериод" \(tlsfleet node --help lists the keys\)$/)
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  try {
    assert.match(refusal('workers: !!float 4\n'), /^.*typo\.yaml: not valid YAML: Unresolved tag: tag:yaml\.org,2002:float[\s\S]*no YAML tags are needed/)
  } finally {
    process.off('warning', onWarning)
  }
  assert.deepEqual(warnings, [], 'no raw YAMLWarning on stderr')
})

test('YAML keys named like Object.prototype members are unknown keys', () => {
  const file = path.join(tempDir(), 'proto.yaml')
  for (const key of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    fs.writeFileSync(file, `${key}: 1\n`)
    assert.throws(() => loadConfig({ env: {}, file }), (err: Error) => err instanceof ConfigError && err.message.includes(`proto.yaml: unknown key "${key}"`), key)
  }
})

test('two listeners of the node on one address are refused, naming both options and values', () => {
  assert.match(conflict({ listen: ['127.0.0.1:29001', '127.0.0.1:29001'] }), /^--listen 127\.0\.0\.1:29001 and --listen 127\.0\.0\.1:29001 are the same address: .*drop one --listen$/)
  assert.match(conflict({ listen: ['0.0.0.0:29001', '127.0.0.1:29001'] }), /^--listen 0\.0\.0\.0:29001 and --listen 127\.0\.0\.1:29001 overlap: 0\.0\.0\.0 takes port 29001 on every IPv4 address/)
  assert.match(conflict({ listen: ['127.0.0.1:29001', ':29001'] }), /--listen 127\.0\.0\.1:29001 and --listen 0\.0\.0\.0:29001 overlap/)
  assert.match(conflict({ listen: ['[::]:29001', '10.0.0.1:29001'] }), /--listen \[::\]:29001 and --listen 10\.0\.0\.1:29001 overlap: \[::\] takes port 29001 on every address, IPv4 and IPv6/)
  assert.match(conflict({ listen: ['[::1]:29001', '[0:0:0:0:0:0:0:1]:29001'] }), /are the same address/)
  assert.match(conflict({ listen: ['[::ffff:127.0.0.1]:29001', '127.0.0.1:29001'] }), /are the same address/)
  assert.match(conflict({ listen: ['Node-1.example:29001', 'node-1.example:29001'] }), /are the same address/)
  assert.match(conflict({ 'admin-listen': '127.0.0.1:29002', 'agent-listen': '127.0.0.1:29002' }),
    /^--admin-listen 127\.0\.0\.1:29002 and --agent-listen 127\.0\.0\.1:29002 are the same address: each listener of the node needs an address of its own; give --agent-listen another address or port$/)
  assert.match(conflict({ listen: ['127.0.0.1:29003'], 'admin-listen': '127.0.0.1:29003' }), /^--listen 127\.0\.0\.1:29003 and --admin-listen 127\.0\.0\.1:29003 are the same address/)
  assert.match(conflict({ listen: ['0.0.0.0:29004'], 'agent-listen': '127.0.0.1:29004' }), /^--listen 0\.0\.0\.0:29004 and --agent-listen 127\.0\.0\.1:29004 overlap/)

  const accepted = (flags: Record<string, unknown>): void => { assert.doesNotThrow(() => checkOptionCombinations(loadConfig({ env: {}, flags })), JSON.stringify(flags)) }
  accepted({ listen: ['127.0.0.1:29001', '127.0.0.1:29002', '127.0.0.2:29001'] })
  accepted({ listen: ['0.0.0.0:29001', '[::1]:29001'] })
  accepted({ listen: ['0.0.0.0:29001', 'node-1.example:29001'] })
  accepted({ listen: ['127.0.0.1:29005'], 'agent-listen': '127.0.0.1:29006', 'sync-listen': '127.0.0.1:29005', 'sync-secret-file': ['/s'] })
  // With --terminator haproxy, the node binds no --listen of its own.
  accepted({ terminator: 'haproxy', 'terminator-socket': '/run/haproxy.sock', 'terminator-keys': '/k', 'sync-secret-file': ['/s'], listen: ['127.0.0.1:29007'], 'admin-listen': '127.0.0.1:29007' })
})

test('an IPv6 zone id is taken and compared in the listener clash check, never crashing it', () => {
  const fine = (flags: Record<string, unknown>): void => { checkOptionCombinations(loadConfig({ env: {}, flags })) }
  fine({ listen: ['[fe80::1%lo]:29011'], 'admin-listen': '127.0.0.1:29011' })
  fine({ listen: ['[fe80::1%lo]:29012', '[fe80::1%eth0]:29012'] })
  fine({ listen: ['[fe80::1%lo]:29013', '[fe80::1]:29013'] })
  assert.match(conflict({ listen: ['[fe80::1%lo]:29014', '[fe80:0::1%lo]:29014'] }), /are the same address/)
  assert.match(conflict({ listen: ['[::]:29015', '[fe80::1%lo]:29015'] }), /overlap: \[::\] takes port 29015/)
  assert.deepEqual(loadConfig({ env: {}, flags: { listen: ['[fe80::1%lo]:29016'] } }).listen, [{ host: 'fe80::1%lo', port: 29016 }])
})

test('HOST:PORT hosts follow the DNS label rule, and numeric hosts must be dotted IPv4', () => {
  for (const [text, reason] of [
    ['999.1.1.1:80', '"999.1.1.1" is not an IPv4 address'],
    ['1.2.3.4.5:80', '"1.2.3.4.5" is not an IPv4 address'],
    ['127.1:80', '"127.1" is not an IPv4 address'],
    ['0:80', '"0" is not an IPv4 address'],
    ['0x7f.1:80', '"0x7f.1" is not an IPv4 address'],
    ['a..b:80', '"a..b" is not a valid host name'],
    ['-x:80', '"-x" is not a valid host name'],
    ['x-.example:80', '"x-.example" is not a valid host name'],
    ['.:80', '"." is not a valid host name'],
    [`${'a'.repeat(64)}.example:80`, 'is not a valid host name'],
    ['back end:80', '"back end" is not a valid host name']
  ] as const) {
    const parsed = parseHostPort(text)
    assert.ok(typeof parsed === 'string' && parsed.includes(reason), `${text}: ${JSON.stringify(parsed)}`)
  }
  for (const text of ['localhost:80', 'localhost.:80', 'node-1.example.com:80', '10.0.0.1:80', '0.0.0.0:80', 'x1.example:80', '1example.com:80', 'back_end:80', 'project_backend_1:80']) {
    assert.equal(typeof parseHostPort(text), 'object', text)
  }
  assert.match(String(parseHostPort('127.1:80')), /four numbers from 0 to 255/)
})

test('an unquoted [IPV6] in YAML (a list there, or a syntax error) is refused with a hint to quote it', () => {
  const file = path.join(tempDir(), 'v6.yaml')
  fs.writeFileSync(file, 'workers: 1\nlisten: [::1]:29001\n')
  assert.throws(() => loadConfig({ env: {}, file }), (err: Error) => err instanceof ConfigError &&
    /v6\.yaml: not valid YAML: .*line 2, column 14/.test(err.message) && err.message.endsWith('\nquote IPv6 addresses in YAML: "[::1]:29001" (unquoted, "[" starts a list)'))
  fs.writeFileSync(file, 'listen:\n  - "[::1]:29001"\n  - [::]:29002\n')
  assert.throws(() => loadConfig({ env: {}, file }), /quote IPv6 addresses in YAML: "\[::\]:29002"/)
  fs.writeFileSync(file, 'admin-listen: [::1]\n')
  assert.throws(() => loadConfig({ env: {}, file }),
    /key "admin-listen": \["::1"\] is not valid for "admin-listen": expected HOST:PORT \(.*\); in YAML, write an IPv6 address quoted, with its brackets and port: "\[::1\]:8443" \(an unquoted \[::1\] is a list holding ::1\)$/)
  // Other syntax errors and other refusals get no such hint.
  fs.writeFileSync(file, 'workers: [1\n')
  assert.throws(() => loadConfig({ env: {}, file }), (err: Error) => /not valid YAML/.test(err.message) && !err.message.includes('IPv6'))
  assert.throws(() => loadConfig({ env: {}, flags: { 'admin-listen': '::1' } }), (err: Error) => /IPv6 addresses must be written in brackets/.test(err.message) && !err.message.includes('YAML'))
})

test('TLSFLEET_* variables that name no option are warned about (the closest option named), not refused; the CLI\'s and scripts\' own are not', () => {
  const env = { TLSFLEET_LISTN: '127.0.0.1:1', TLSFLEET_WORKER: '2', TLSFLEET_SOMETHING_ELSE: 'x', TLSFLEET_CONFIG: 'node.yaml', TLSFLEET_ADMIN_URL: 'http://127.0.0.1:8445', TLSFLEET_LISTEN: '127.0.0.1:29001', PATH: '/bin' }
  assert.deepEqual(unknownEnvironmentVariables(env), [
    'environment variable TLSFLEET_LISTN names no tlsfleet option and is ignored (did you mean TLSFLEET_LISTEN?)',
    'environment variable TLSFLEET_SOMETHING_ELSE names no tlsfleet option and is ignored',
    'environment variable TLSFLEET_WORKER names no tlsfleet option and is ignored (did you mean TLSFLEET_WORKERS?)'
  ])
  assert.deepEqual(loadConfig({ env }).listen, [{ host: '127.0.0.1', port: 29001 }])
  assert.deepEqual(unknownEnvironmentVariables({ TLSFLEET_SESSION_TIMEOUT: '1', TLSFLEET_CONFIG: 'x' }), [])
})

test('a refusal gives the parser\'s own reason once, never zod\'s generic words, and masks a URL\'s password', () => {
  const refused = (flags: Record<string, unknown>): string => configRefusal({ env: {}, flags })
  // A union with "off" was reported as "(Invalid input)", the URL echoed with its password.
  const store = refused({ 'session-store': 'redis://:hunter2@127.0.0.1:6380/100' })
  assert.match(store, /^--session-store: "redis:\/\/:\*\*\*@127\.0\.0\.1:6380\/100" is not valid for "session-store": expected off, redis:\/\/.* \(database "100" is not a number from 0 to 99\)$/)
  assert.doesNotMatch(store, /hunter2|Invalid input/)
  assert.match(refused({ 'session-store': 'redis://app:s3cr%et@127.0.0.1:6380' }), /"redis:\/\/app:\*\*\*@127\.0\.0\.1:6380" .*\(the credentials hold a "%" that starts no %-escape/)
  assert.equal(refused({ 'sync-listen': 'nowhere' }), '--sync-listen: "nowhere" is not valid for "sync-listen": expected HOST:PORT or "off"')
  assert.equal(refused({ listen: ['foo'] }), '--listen: ["foo"] is not valid for "listen": expected HOST:PORT', 'was "expected HOST:PORT (expected HOST:PORT)"')
  assert.equal(refused({ 'tls-profile': 'strict' }), '--tls-profile: "strict" is not valid for "tls-profile": expected one of modern, intermediate, old')
  assert.equal(refused({ 'admin-listen': ['127.0.0.1:1'] }), '--admin-listen: ["127.0.0.1:1"] is not valid for "admin-listen": expected HOST:PORT (a list, not text)')
  assert.equal(loadConfig({ env: {}, flags: { 'session-store': 'off', backend: 'demo' } }).sessionStore, 'off')
})

test('--terminator-keys refuses at load what the Runtime API client would refuse in every command, naming the option and the character', () => {
  const refusal = (value: string): string => configRefusal({ env: {}, flags: { terminator: 'haproxy', 'terminator-keys': value } })
  assert.match(refusal('/etc/haproxy/keys;show'), /^--terminator-keys: "\/etc\/haproxy\/keys;show" is not valid for "terminator-keys": .*\(contains ";", which ends a command in HAProxy's Runtime API\)$/)
  assert.match(refusal('/etc/haproxy/keys\nshow'), /^--terminator-keys: .* \(contains a line break, which ends a command in HAProxy's Runtime API\)$/)
  assert.match(refusal('/etc/haproxy/my keys'), /\(contains whitespace \(" "\), which splits an argument in HAProxy's Runtime API\)$/)
  assert.equal(loadConfig({ env: {}, flags: { terminator: 'haproxy', 'terminator-keys': '/etc/haproxy/tls-ticket-keys' } }).terminatorKeys, '/etc/haproxy/tls-ticket-keys')
})
