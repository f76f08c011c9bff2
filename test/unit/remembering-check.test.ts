import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { CertificateBundle } from '../../src/tls/certificates.js'
import { rememberingCheck } from '../../src/tls/secure-contexts.js'

const bundle = (path: string, key: string, cert: string): CertificateBundle => ({ path, key, cert, names: ['a.test'], keyType: 'ec', notAfter: '' })

test('a pair that passed is not checked again on the next reload; a new or changed pair is; a refused one every time', () => {
  const checked: string[] = []
  const check = rememberingCheck((b) => {
    checked.push(b.path)
    if (b.key === 'weak') throw new Error(`${b.path}: refused`)
  })
  check(bundle('a.pem', 'k1', 'c1'))
  check(bundle('a.pem', 'k1', 'c1'))
  check(bundle('moved.pem', 'k1', 'c1')) // the same pair under another name: its content is what was checked
  check(bundle('a.pem', 'k1', 'c2')) // renewed certificate
  check(bundle('a.pem', 'k2', 'c1')) // new key
  assert.deepEqual(checked, ['a.pem', 'a.pem', 'a.pem'])
  assert.throws(() => check(bundle('w.pem', 'weak', 'c1')), /w.pem: refused/)
  assert.throws(() => check(bundle('w.pem', 'weak', 'c1')), /w.pem: refused/)
  assert.equal(checked.length, 5)
})

test('the key and the certificate are separated in what is remembered (no pair passes for another by concatenation)', () => {
  const checked: string[] = []
  const check = rememberingCheck((b) => { checked.push(`${b.key}|${b.cert}`) })
  check(bundle('a.pem', 'ab', 'c'))
  check(bundle('a.pem', 'a', 'bc'))
  assert.equal(checked.length, 2)
})

test('at most `remember` pairs are kept: the least recently used is checked again', () => {
  let count = 0
  const check = rememberingCheck(() => { count++ }, 2)
  for (const key of ['1', '2', '3', '1']) check(bundle('a.pem', key, 'c'))
  assert.equal(count, 4)
})
