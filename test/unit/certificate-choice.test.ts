import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ecdsaVerifiable } from '../../src/tls/certificate-choice.js'
import * as S from '../../src/tls/client-hello.js'
import { loadConfig } from '../../src/config/load.js'
import { loadCertificateFile } from '../../src/tls/certificates.js'
import { buildSniRouter } from '../../src/tls/secure-contexts.js'
import { resolveTlsPolicy } from '../../src/tls/tls-policy.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'

const dir = tempDir()
const policy = resolveTlsPolicy(loadConfig({ env: {} }))
const options = { sessionIdContext: 'x', sessionTimeoutSeconds: 300, policy, clientAuth: {} }
type Kind = Parameters<typeof makeCertificate>[3]
const load = (file: string, names: string[], kind: Kind): ReturnType<typeof loadCertificateFile> => loadCertificateFile(makeCertificate(dir, file, names, kind))

const rsa = load('rsa', ['a.test', 'b.test', '*.w.test'], 'rsa')
const ecdsa = load('ecdsa', ['A.test', '*.w.test'], 'ecdsa')
const rsa2 = load('rsa2', ['a.test'], 'rsa')
const ed = load('ed', ['a.test', 'e.test'], 'ed25519')

test('a name\'s certificates of different key types share one context (OpenSSL picks per client); a second one of a type is not used', () => {
  const router = buildSniRouter([rsa, ecdsa, rsa2, ed], options)
  const files = (name: string | undefined): string[] => router.lookup(name).all.bundles.map((b) => b.path)
  assert.deepEqual(files('a.test'), [rsa.path, ecdsa.path, ed.path])
  assert.deepEqual(files('x.w.test'), [rsa.path, ecdsa.path], 'wildcards pair the same way')
  assert.deepEqual(files('b.test'), [rsa.path])
  assert.deepEqual(files('e.test'), [ed.path])
  assert.equal(router.lookup('a.test'), router.lookup(undefined), 'the default is the first file\'s name, with its pair')
  assert.equal(router.lookup('x.w.test'), router.lookup('y.w.test'), 'names served by the same certificates share one choice')
  assert.deepEqual(router.lookup('a.test').first.bundles.map((b) => b.path), [rsa.path], 'first: the first file given for the name, alone')
  assert.equal(router.lookup('b.test').first, router.lookup('b.test').all, 'one certificate: one context')
  assert.equal(router.lookup('a.test').all.isBuilt, true, 'the default name\'s context is built at once')
  assert.equal(router.lookup('e.test').all.isBuilt, false, 'the others when a client first names them')
})

test('one certificate alone (the SNI callback path, stapling): ECDSA when the client can verify it, else RSA (Ed25519 only when alone), else the first', () => {
  const p384 = load('p384', ['p.test'], 'ecdsa-p384')
  const rsaP = load('rsa-p', ['p.test'], 'rsa')
  const edFirst = load('ed-first', ['f.test'], 'ed25519')
  const rsaF = load('rsa-f', ['f.test'], 'rsa')
  const router = buildSniRouter([rsa, ecdsa, p384, rsaP, ed, edFirst, rsaF], options)
  const single = (name: string, signatures: number | undefined, tls13 = true): string | undefined => router.lookup(name).single(signatures, tls13).bundles[0]?.path
  const tls13p256 = S.SIGNATURES_SENT | S.SIGNATURES_ECDSA | S.SIGNATURES_ECDSA_P256
  assert.equal(single('x.w.test', tls13p256), ecdsa.path)
  assert.equal(single('x.w.test', S.SIGNATURES_SENT), rsa.path)
  assert.equal(single('x.w.test', undefined), rsa.path, 'a ClientHello not read: RSA, which every client can use')
  assert.equal(single('p.test', tls13p256), rsaP.path, 'a P-384 certificate for a client whose schemes name only P-256: RSA')
  assert.equal(single('f.test', tls13p256), rsaF.path, 'Ed25519 given first, then RSA: RSA')
  assert.equal(single('e.test', S.SIGNATURES_SENT), ed.path, 'Ed25519 alone: it')
  assert.equal(single('b.test', tls13p256), rsa.path, 'one certificate: it')
})

test('ecdsaVerifiable: TLS 1.3 needs the scheme of the curve; TLS 1.2 an ECDSA scheme (or none sent), an ECDSA suite and the curve among the groups (or none sent)', () => {
  const { SIGNATURES_SENT: SENT, SIGNATURES_ECDSA: ECDSA, SIGNATURES_ECDSA_P256: P256, SIGNATURES_ECDSA_P384: P384, SIGNATURES_ECDSA_SUITE: SUITE, SIGNATURES_GROUPS_SENT: GROUPS, SIGNATURES_GROUP_P256: G256, SIGNATURES_GROUP_P384: G384 } = S
  assert.equal(ecdsaVerifiable(SENT | ECDSA | P256, 'prime256v1', true), true)
  assert.equal(ecdsaVerifiable(SENT | ECDSA | P256, 'secp384r1', true), false)
  assert.equal(ecdsaVerifiable(SENT | ECDSA | P384, 'secp384r1', true), true)
  assert.equal(ecdsaVerifiable(SENT | ECDSA | SUITE, 'secp384r1', false), true, 'TLS 1.2: the hash is not bound to the curve')
  assert.equal(ecdsaVerifiable(SENT | ECDSA, 'prime256v1', false), false, 'no ECDSA suite offered')
  assert.equal(ecdsaVerifiable(SENT | SUITE, 'prime256v1', false), false, 'no ECDSA scheme')
  assert.equal(ecdsaVerifiable(SUITE, 'prime256v1', false), true, 'no signature_algorithms: RFC 5246 allows ECDSA with SHA-1')
  assert.equal(ecdsaVerifiable(SENT | ECDSA | SUITE | GROUPS | G256, 'secp384r1', false), false, 'the curve is not among the groups')
  assert.equal(ecdsaVerifiable(SENT | ECDSA | SUITE | GROUPS | G384, 'secp384r1', false), true)
  assert.equal(ecdsaVerifiable(SENT | ECDSA | P256 | SUITE, undefined, true), false, 'a curve unknown here: RSA, which works')
})

test('session-ID contexts: without --session-id-context each choice has its own, from the base and its leaf certificates (any order), at most 32 bytes; with it, every choice carries it as given', () => {
  const perCertificate = { ...options, sessionIdContext: 'tlsfleet', perCertificate: true }
  const router = buildSniRouter([rsa, ecdsa, rsa2, ed], perCertificate)
  const context = (name: string, r = router): string => r.lookup(name).sessionIdContext.toString('latin1')
  assert.notEqual(context('a.test'), context('b.test'), 'another certificate: another context')
  assert.notEqual(context('a.test'), context('x.w.test'), 'the same RSA certificate with another partner: another context')
  assert.notEqual(context('a.test'), context('e.test'))
  assert.equal(context('x.w.test'), context('y.w.test'), 'the same certificates: the same context')
  for (const choice of router.values()) {
    for (const c of choice.contexts()) assert.equal(c.sessionIdContext, choice.sessionIdContext.toString('latin1'), `${c.paths}: every context of a choice (together, and each alone for the SNI callback) carries the choice's`)
  }
  assert.ok(context('a.test').length <= 32 && Buffer.byteLength(context('a.test')) <= 32, 'OpenSSL\'s limit')
  const reordered = buildSniRouter([ed, ecdsa, rsa, rsa2], perCertificate)
  for (const name of ['a.test', 'b.test', 'x.w.test', 'e.test']) assert.equal(context(name, reordered), context(name), `${name}: another node listing the same files in another order computes the same`)
  const otherBase = buildSniRouter([rsa, ecdsa, rsa2, ed], { ...perCertificate, sessionIdContext: 'other' })
  assert.notEqual(context('b.test', otherBase), context('b.test'), 'the base (and so --client-verify and --client-ca) is part of it')
  const renewed = load('rsa-renewed', ['a.test', 'b.test', '*.w.test'], 'rsa')
  assert.notEqual(context('b.test', buildSniRouter([renewed], perCertificate)), context('b.test'), 'a renewed certificate: a new context')

  const given = buildSniRouter([rsa, ecdsa, rsa2, ed], { ...options, sessionIdContext: 'haproxy' })
  for (const name of ['a.test', 'b.test', 'x.w.test', 'e.test']) assert.equal(context(name, given), 'haproxy', `${name}: --session-id-context kept verbatim`)
})
