import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { CertificateError } from '../../src/errors.js'
import { loadCertificateFile } from '../../src/tls/certificates.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'

/** The message a refused file gets (the test fails if it loads). */
function refusal (file: string): string {
  try {
    loadCertificateFile(file)
  } catch (err) {
    assert.ok(err instanceof CertificateError, String(err))
    return err.message
  }
  assert.fail(`${file} loaded`)
}

test('the files operators most often give instead of key + certificate + chain are refused saying what they are and what to do', () => {
  const dir = tempDir()
  const good = makeCertificate(dir, 'good', ['good.test'])
  const other = makeCertificate(dir, 'other', ['other.test'])
  assert.deepEqual(loadCertificateFile(good).names, ['good.test'])
  const key = fs.readFileSync(path.join(dir, 'good.key'), 'utf8')
  const cert = fs.readFileSync(path.join(dir, 'good.crt'), 'utf8')
  const otherCert = fs.readFileSync(path.join(dir, 'other.crt'), 'utf8')
  const write = (name: string, content: string | Buffer): string => { const f = path.join(dir, name); fs.writeFileSync(f, content); return f }

  // DER: no PEM block at all.
  const der = execFileSync('openssl', ['x509', '-in', path.join(dir, 'good.crt'), '-outform', 'der'])
  assert.match(refusal(write('good.der', der)), /not a PEM file .*openssl x509 -inform der/)
  // The leaf after another certificate (a chain pasted first).
  assert.match(refusal(write('leaf-second.pem', key + otherCert + cert)), /the private key belongs to certificate 2 of the file, not the first: put the server's own certificate first/)
  assert.match(refusal(write('mismatch.pem', key + otherCert)), /does not match the first certificate \(nor any other in the file\)/)
  // A passphrase-protected key.
  const encrypted = execFileSync('openssl', ['pkey', '-in', path.join(dir, 'good.key'), '-aes256', '-passout', 'pass:secret']).toString()
  assert.match(refusal(write('encrypted.pem', encrypted + cert)), /the private key is encrypted \(passphrase-protected keys are not supported: decrypt it/)
  // A trust-store block.
  const trusted = execFileSync('openssl', ['x509', '-in', path.join(dir, 'good.crt'), '-trustout']).toString()
  assert.match(refusal(write('trusted.pem', key + trusted)), /TRUSTED CERTIFICATE block, which is for trust stores; give a plain CERTIFICATE/)
  // A deploy that stopped half-way: said as such, not as a DER file.
  assert.match(refusal(write('empty.pem', '')), /certificate ".*empty\.pem": the file is empty$/)
  assert.match(refusal(write('cert-only.pem', cert)), /expected exactly one private key, found 0 \(the file must hold the key, then the certificate and its chain\)/)
  // A chain certificate mangled in a copy (was blamed on the TLS policy when OpenSSL refused the context).
  const mangled = otherCert.replace(/\n([A-Za-z0-9+/]{20})/, '\n!!!!$1')
  assert.match(refusal(write('bad-chain.pem', key + cert + mangled)), /certificate 2 of the file \(the chain\) is unreadable/)
  assert.ok(fs.existsSync(other))
})
