import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadConfig } from '../../src/config/load.js'
import { loadCertificateFile } from '../../src/tls/certificates.js'
import { buildSniRouter } from '../../src/tls/secure-contexts.js'
import { resolveTlsPolicy } from '../../src/tls/tls-policy.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'

const dir = tempDir()
const policy = resolveTlsPolicy(loadConfig({ env: {} }))
const options = { sessionIdContext: 'x', sessionTimeoutSeconds: 300, policy, clientAuth: {} }
const load = (file: string, names: string[], kind: 'rsa' | 'ecdsa'): ReturnType<typeof loadCertificateFile> => loadCertificateFile(makeCertificate(dir, file, names, kind))

test('a name with an RSA and an ECDSA certificate: the ECDSA one for a client that can verify it, else the RSA one', () => {
  const rsa = load('rsa', ['a.test', 'b.test', '*.w.test'], 'rsa')
  const ecdsa = load('ecdsa', ['A.test', '*.w.test'], 'ecdsa')
  const rsa2 = load('rsa2', ['a.test'], 'rsa')
  const router = buildSniRouter([rsa, ecdsa, rsa2], options)
  const served = (name: string | undefined, ecdsaCapable: boolean): string => router.lookup(name).pick(ecdsaCapable).bundle.path
  assert.equal(served('a.test', true), ecdsa.path)
  assert.equal(served('a.test', false), rsa.path, 'the first RSA certificate given; a second one of that kind for the name is not used')
  assert.equal(served('x.w.test', true), ecdsa.path, 'wildcards pair the same way')
  assert.equal(served('x.w.test', false), rsa.path)
  assert.equal(served('b.test', true), rsa.path, 'one certificate only: every client gets it')
  assert.equal(router.lookup('a.test'), router.lookup(undefined), 'the default is the first file\'s name, with its pair')
  assert.equal(router.lookup(undefined).first.bundle.path, rsa.path, 'first: the first file, what a client gets when the choice is not made')
  assert.equal(router.lookup('x.w.test'), router.lookup('y.w.test'), 'names served by the same certificates share one choice')
})

test('the default certificate and its pair are built at once, the others when first used', () => {
  const rsa = load('d-rsa', ['d.test'], 'rsa')
  const ecdsa = load('d-ecdsa', ['d.test'], 'ecdsa')
  const other = load('e-rsa', ['e.test'], 'rsa')
  const router = buildSniRouter([rsa, ecdsa, other], options)
  assert.deepEqual(router.lookup('d.test').contexts().map((c) => c.isBuilt), [true, true])
  assert.equal(router.lookup('e.test').first.isBuilt, false)
})
