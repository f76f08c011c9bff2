import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { ConfigError } from '../../src/errors.js'
import { clientAuthWarnings, loadClientAuthFiles, sessionIdContextFor } from '../../src/tls/client-auth.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { TestCa } from '../helpers/pki.js'

test('the session-ID context is the configured one without client certificates, and differs per policy and CA with them', () => {
  assert.equal(sessionIdContextFor('hitch', 'none', undefined), 'hitch')
  const optional = sessionIdContextFor('farm', 'optional', 'CA one')
  const required = sessionIdContextFor('farm', 'require', 'CA one')
  const otherCa = sessionIdContextFor('farm', 'require', 'CA two')
  const otherFarm = sessionIdContextFor('other', 'require', 'CA one')
  assert.equal(new Set(['farm', optional, required, otherCa, otherFarm]).size, 5)
  // Every node with the same settings computes the same one (farm-wide resumption), within OpenSSL's 32 bytes.
  assert.equal(sessionIdContextFor('farm', 'require', 'CA one'), required)
  assert.ok(Buffer.byteLength(required) <= 32)
})

test('a CA or CRL file that is not what it should be is refused, naming the option and the file', () => {
  const dir = tempDir()
  const bundle = makeCertificate(dir, 'ca', ['ca.test'])
  const junk = path.join(dir, 'junk.pem')
  fs.writeFileSync(junk, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n')
  const refusal = (ca: string, crl: string): string => {
    try { loadClientAuthFiles(ca, crl) } catch (err) { assert.ok(err instanceof ConfigError); return err.message }
    assert.fail('accepted')
  }
  assert.match(refusal(path.join(dir, 'missing.pem'), ''), /--client-ca ".*missing\.pem": cannot read/)
  assert.match(refusal(junk, ''), /--client-ca ".*junk\.pem": certificate 1 is unreadable/)
  assert.match(refusal(bundle, bundle), /--crl ".*ca\.pem": no PEM CRL in it/)
  const files = loadClientAuthFiles(bundle, '')
  assert.match(files.ca ?? '', /^-----BEGIN CERTIFICATE-----/)
  assert.doesNotMatch(files.ca ?? '', /PRIVATE KEY/, 'only the certificates are kept')
})

test('warnings: a --client-ca CA without a CRL of its own, a CRL past its nextUpdate, a CRL not valid yet (each refuses every client of its CA)', () => {
  const dir = tempDir()
  const one = new TestCa(path.join(dir, 'one'), 'CA one')
  const two = new TestCa(path.join(dir, 'two'), 'CA two')
  const cas = path.join(dir, 'cas.pem')
  fs.writeFileSync(cas, fs.readFileSync(one.cert, 'utf8') + fs.readFileSync(two.cert, 'utf8'))
  const both = path.join(dir, 'both.pem')
  fs.writeFileSync(both, fs.readFileSync(one.crl('one.crl'), 'utf8') + fs.readFileSync(two.crl('two.crl'), 'utf8'))
  assert.deepEqual(clientAuthWarnings(loadClientAuthFiles(cas, both)), [])
  assert.deepEqual(clientAuthWarnings(loadClientAuthFiles(cas, '')), [], 'no --crl: no CRL is asked for')

  const onlyOne = clientAuthWarnings(loadClientAuthFiles(cas, path.join(one.dir, 'one.crl')))
  assert.equal(onlyOne.length, 1)
  assert.deepEqual(onlyOne[0]?.fields, { ca: 'CN=CA two' })
  assert.match(onlyOne[0]?.message ?? '', /UNABLE_TO_GET_CRL/)

  // The test CA's CRLs are valid for two days from now.
  const files = loadClientAuthFiles(cas, both)
  const late = clientAuthWarnings(files, Date.now() + 3 * 86_400_000)
  assert.deepEqual(late.map((w) => w.fields.issuer), ['CN=CA one', 'CN=CA two'])
  assert.match(late[0]?.message ?? '', /CRL_HAS_EXPIRED/)
  const early = clientAuthWarnings(files, Date.now() - 86_400_000)
  assert.deepEqual(early.map((w) => w.fields.issuer), ['CN=CA one', 'CN=CA two'])
  assert.match(early[0]?.message ?? '', /CRL_NOT_YET_VALID/)
})
