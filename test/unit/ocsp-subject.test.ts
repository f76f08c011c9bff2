import assert from 'node:assert/strict'
import fs from 'node:fs'
import { test } from 'node:test'
import { ocspSubject } from '../../src/ocsp/ocsp-response.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { TestCa } from '../helpers/pki.js'

test('a certificate without OCSP says why: no issuer after the leaf, or no responder named; with both, its responder', () => {
  const dir = tempDir()
  const selfSigned = fs.readFileSync(makeCertificate(dir, 'alone', ['alone.test']), 'utf8')
  assert.match(ocspSubject(selfSigned) as string, /no issuer certificate after the leaf/)
  const ca = new TestCa(`${dir}/ca`)
  const plain = ca.issue('plain', { names: ['plain.test'], usage: 'server' })
  assert.match(ocspSubject(fs.readFileSync(plain.bundle, 'utf8')) as string, /names no http\(s\) OCSP responder/)
  const stapled = ca.issue('stapled', { names: ['stapled.test'], usage: 'server', ocspUrl: 'http://127.0.0.1:9/' })
  const subject = ocspSubject(fs.readFileSync(stapled.bundle, 'utf8'))
  assert.equal(typeof subject === 'string' ? subject : subject.responderUrl, 'http://127.0.0.1:9/')
})
