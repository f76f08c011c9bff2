import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { RevokedCertificates } from '../../src/tls/revoked-certificates.js'
import { tempDir } from '../helpers/certs.js'
import { TestCa } from '../helpers/pki.js'

const CRL_BLOCK = /-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g

function x509 (file: string): crypto.X509Certificate {
  return new crypto.X509Certificate(fs.readFileSync(file))
}

test('a serial is revoked only by a CRL of its own issuer, whatever its spelling (a DER leading zero, Node\'s hex)', () => {
  const dir = tempDir()
  const one = new TestCa(path.join(dir, 'one'), 'CA one')
  const two = new TestCa(path.join(dir, 'two'), 'CA two')
  // Serial 0x80 has its high bit set: DER writes it 00 80, Node prints "80".
  fs.writeFileSync(path.join(one.dir, 'serial'), '80\n')
  fs.writeFileSync(path.join(two.dir, 'serial'), '80\n')
  const revoked = one.issue('revoked', { names: ['a'], usage: 'client' })
  const sameSerialOtherCa = two.issue('same-serial', { names: ['b'], usage: 'client' })
  const kept = one.issue('kept', { names: ['c'], usage: 'client' })
  one.revoke(revoked)
  assert.equal(x509(revoked.cert).serialNumber.replace(/^0+/, ''), '80')
  assert.equal(x509(sameSerialOtherCa.cert).serialNumber, x509(revoked.cert).serialNumber)

  const blocks = [...fs.readFileSync(one.crl(), 'utf8').matchAll(CRL_BLOCK), ...fs.readFileSync(two.crl(), 'utf8').matchAll(CRL_BLOCK)].map((m) => m[0])
  const list = new RevokedCertificates(blocks)
  assert.equal(list.size, 1)
  assert.equal(list.has(x509(revoked.cert)), true)
  assert.equal(list.has(x509(sameSerialOtherCa.cert)), false, 'the same serial from another CA')
  assert.equal(list.has(x509(kept.cert)), false)
  assert.equal(new RevokedCertificates([]).has(x509(revoked.cert)), false)
})

test('an unreadable CRL throws (the primary refuses it at start and at SIGHUP, naming --crl)', () => {
  assert.throws(() => new RevokedCertificates(['-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n']))
})
