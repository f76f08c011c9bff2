import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { ConfigError } from '../../src/errors.js'
import { loadClientAuthFiles, sessionIdContextFor } from '../../src/tls/client-auth.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'

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
