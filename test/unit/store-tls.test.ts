import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { ConfigError } from '../../src/errors.js'
import { loadStoreTls } from '../../src/store/store-tls.js'
import { parseKeyAndChain } from '../../src/tls/key-and-chain.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'

/**
 * In a new directory: a client certificate as a store asks for one (no DNS name, no CN: nothing
 * for SNI to route), its key, a server certificate of another key, and that one mangled in a copy.
 * Blocks as the file's parse hands them over: without the newline after END.
 */
function blocks (): { dir: string; key: string; cert: string; other: string; mangled: string } {
  const dir = tempDir()
  const keyFile = path.join(dir, 'client.key')
  const certFile = path.join(dir, 'client.crt')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/O=tlsfleet node'], { stdio: 'ignore' })
  makeCertificate(dir, 'other', ['other.test'])
  const other = fs.readFileSync(path.join(dir, 'other.crt'), 'utf8').trim()
  return {
    dir,
    key: fs.readFileSync(keyFile, 'utf8').trim(),
    cert: fs.readFileSync(certFile, 'utf8').trim(),
    other,
    mangled: other.replace(/\n([A-Za-z0-9+/]{20})/, '\n!!!!$1')
  }
}

/** A PEM file of these blocks, one after the other. */
function pemFile (dir: string, name: string, ...blocks: string[]): string {
  const file = path.join(dir, name)
  fs.writeFileSync(file, blocks.map((block) => `${block.trim()}\n`).join(''), { mode: 0o600 })
  return file
}

/** The refusal --session-store-cert `blocks` gets (the test fails if it loads). */
function refusal (dir: string, name: string, ...blocks: string[]): string {
  const file = pemFile(dir, name, ...blocks)
  try {
    loadStoreTls('', file)
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    return err.message
  }
  assert.fail(`${name} loaded`)
}

test('one key-and-chain parse for --cert and --session-store-cert: a client certificate needs no name; what is wrong is returned, for each option to word', () => {
  const { key, cert, other, mangled } = blocks()
  const parsed = parseKeyAndChain(key, [cert, other])
  assert.ok(!('problem' in parsed), JSON.stringify(parsed))
  assert.equal(parsed.cert, `${cert}\n${other}\n`, 'leaf then chain, one block a line')
  assert.equal(parsed.privateKey.asymmetricKeyType, 'ec')
  assert.deepEqual(parseKeyAndChain(key, [other, cert]), { problem: 'key mismatch', fits: 1 })
  assert.deepEqual(parseKeyAndChain(key, [other]), { problem: 'key mismatch', fits: undefined })
  const chain = parseKeyAndChain(key, [cert, mangled])
  assert.ok('problem' in chain && chain.problem === 'unreadable certificate' && chain.index === 1, JSON.stringify(chain))
  const garbage = parseKeyAndChain('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----', [cert])
  assert.ok('problem' in garbage && garbage.problem === 'unreadable key', JSON.stringify(garbage))
})

test('--session-store-cert: a client certificate without a name loads; each refusal names the option, the file and what is wrong', () => {
  const { dir, key, cert, other, mangled } = blocks()
  const tls = loadStoreTls('', pemFile(dir, 'good.pem', key, cert, other))
  assert.equal(tls.key, key)
  assert.equal(tls.cert, `${cert}\n${other}\n`)

  assert.match(refusal(dir, 'keyless.pem', cert), /^--session-store-cert ".*keyless\.pem": expected one private key and the client certificate \(then its chain\), found 0 key\(s\) and 1 certificate\(s\)$/)
  assert.match(refusal(dir, 'first.pem', key, other, cert), /^--session-store-cert ".*first\.pem": the private key does not match the first certificate \(put the client certificate first, then its chain\)$/)
  const encrypted = execFileSync('openssl', ['pkey', '-in', path.join(dir, 'client.key'), '-aes256', '-passout', 'pass:secret']).toString()
  assert.match(refusal(dir, 'encrypted.pem', encrypted, cert), /^--session-store-cert ".*encrypted\.pem": unreadable private key \(a passphrase-protected one is not supported\): /)
  assert.match(refusal(dir, 'leaf.pem', key, mangled), /^--session-store-cert ".*leaf\.pem": certificate 1 is unreadable: /)
  // A mangled chain certificate failed every connection to the store; now it is refused at start.
  assert.match(refusal(dir, 'chain.pem', key, cert, mangled), /^--session-store-cert ".*chain\.pem": certificate 2 is unreadable: /)
})
