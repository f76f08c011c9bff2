import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadConfig } from '../../src/config/load.js'
import { loadCertificateFile } from '../../src/tls/certificates.js'
import { buildSniRouter, checkBundleUsable } from '../../src/tls/secure-contexts.js'
import { signingKeys, signsWith, unsignableProblem } from '../../src/tls/signing-keys.js'
import { resolveTlsPolicy } from '../../src/tls/tls-policy.js'
import * as S from '../../src/tls/client-hello.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'

const both = (sigalgs: string, keyType: string, curve?: string): [boolean, boolean] => {
  const keys = signingKeys(sigalgs)
  return [signsWith(keys, keyType, curve, false), signsWith(keys, keyType, curve, true)]
}

test('signingKeys: each spelling --sigalgs takes, by key type and TLS version ([TLS 1.2, TLS 1.3])', () => {
  // PKCS#1 RSA signs TLS 1.2 only (RFC 8446 4.2.3); RSA-PSS with an RSA key both; rsa_pss_pss_* an RSA-PSS key.
  for (const name of ['RSA+SHA256', 'SHA256+RSA', 'rsa+sha384', 'rsa_pkcs1_sha256', 'RSA_PKCS1_SHA512']) assert.deepEqual(both(name, 'rsa'), [true, false], name)
  for (const name of ['RSA-PSS+SHA256', 'PSS+SHA384', 'rsa_pss_rsae_sha256']) assert.deepEqual(both(name, 'rsa'), [true, true], name)
  assert.deepEqual(both('rsa_pss_pss_sha256', 'rsa'), [false, false])
  assert.deepEqual(both('rsa_pss_pss_sha256', 'rsa-pss'), [true, true])
  // ECDSA: any curve in TLS 1.2, the scheme's own curve in TLS 1.3.
  assert.deepEqual(both('ECDSA+SHA256', 'ec', 'prime256v1'), [true, true])
  assert.deepEqual(both('ECDSA+SHA256', 'ec', 'secp384r1'), [true, false])
  assert.deepEqual(both('ecdsa_secp384r1_sha384', 'ec', 'secp384r1'), [true, true])
  assert.deepEqual(both('ecdsa_sha1', 'ec', 'prime256v1'), [true, false])
  assert.deepEqual(both('ECDSA+SHA256', 'rsa'), [false, false])
  assert.deepEqual(both('Ed25519', 'ed25519'), [true, true])
  assert.deepEqual(both('ed25519', 'ed448'), [false, false])
  assert.equal(signingKeys('ECDSA+SHA256:ecdsa_secp521r1_sha512').ecdsaSchemes, S.SIGNATURES_ECDSA_P256 | S.SIGNATURES_ECDSA_P521)
  // No --sigalgs, or a name OpenSSL takes that the table does not know: no key is ruled out.
  for (const list of ['', 'ECDSA+SHA256:ecdsa_brainpoolP256r1tls13_sha256', 'mldsa65']) assert.deepEqual(both(list, 'rsa'), [true, true], list)
})

test('unsignableProblem: only a key no version of the policy can sign with; TLS 1.0/1.1 sign whatever --sigalgs says', () => {
  const policy = (tlsProfile: 'modern' | 'intermediate' | 'old', sigalgs: string): ReturnType<typeof resolveTlsPolicy> => resolveTlsPolicy({ ...loadConfig({ env: {} }), tlsProfile, sigalgs })
  const problem = (p: ReturnType<typeof resolveTlsPolicy>, keyType: string, curve?: string): string | undefined => unsignableProblem(signingKeys(p.sigalgs), keyType, curve, p, '--sigalgs')
  assert.match(problem(policy('intermediate', 'ECDSA+SHA256'), 'rsa') ?? '', /^no signature algorithm of --sigalgs "ECDSA\+SHA256" signs with its rsa key, so OpenSSL would fail every handshake with it: add rsa_pss_rsae_sha256/)
  assert.equal(problem(policy('intermediate', 'ECDSA+SHA256:RSA+SHA256'), 'rsa'), undefined, 'PKCS#1: TLS 1.2 clients')
  assert.match(problem(policy('modern', 'ECDSA+SHA256:RSA+SHA256'), 'rsa') ?? '', /signs with its rsa key in TLS 1\.3/, 'PKCS#1 under a TLS 1.3-only profile')
  assert.equal(problem(policy('old', 'ECDSA+SHA256'), 'rsa'), undefined, 'TLS 1.0 clients can use it')
  assert.equal(problem(policy('intermediate', ''), 'rsa'), undefined)
})

const dir = tempDir()
const rsa = loadCertificateFile(makeCertificate(dir, 'rsa', ['a.test'], 'rsa'))
const ecdsa = loadCertificateFile(makeCertificate(dir, 'ecdsa', ['a.test'], 'ecdsa'))

test('checkBundleUsable refuses a certificate --sigalgs never signs with, naming the option as given', () => {
  const policy = resolveTlsPolicy({ ...loadConfig({ env: {} }), sigalgs: 'ECDSA+SHA256' })
  assert.throws(() => checkBundleUsable(rsa, policy, 'TLSFLEET_SIGALGS'), (err: Error) => err.message.startsWith(`certificate "${rsa.path}": no signature algorithm of TLSFLEET_SIGALGS "ECDSA+SHA256" signs with its rsa key`))
  checkBundleUsable(ecdsa, policy)
})

test('one certificate alone follows --sigalgs: the RSA one given first is passed over where it cannot sign, whether the ClientHello was read or not', () => {
  const choiceFor = (sigalgs: string): ReturnType<ReturnType<typeof buildSniRouter>['lookup']> => {
    const policy = resolveTlsPolicy({ ...loadConfig({ env: {} }), sigalgs })
    return buildSniRouter([rsa, ecdsa], { sessionIdContext: 'x', sessionTimeoutSeconds: 300, policy, clientAuth: {} }).lookup('a.test')
  }
  const pkcs1 = choiceFor('ECDSA+SHA256:RSA+SHA256')
  assert.equal(pkcs1.first.bundles[0], ecdsa, 'first: the one signed in TLS 1.2 and 1.3')
  const tls13client = S.SIGNATURES_SENT | S.SIGNATURES_ECDSA | S.SIGNATURES_ECDSA_P384
  assert.equal(pkcs1.single(tls13client, true).bundles[0], ecdsa, 'a TLS 1.3 handshake cannot be signed with PKCS#1 RSA (the client cannot verify this ECDSA one either)')
  assert.equal(pkcs1.single(S.SIGNATURES_SENT, false).bundles[0], rsa, 'TLS 1.2, a client without ECDSA: RSA')
  assert.equal(pkcs1.single(undefined, false).bundles[0], ecdsa, 'a ClientHello not read, its version unknown: the one signed in every version')
  assert.equal(choiceFor('ECDSA+SHA256:rsa_pss_rsae_sha256').single(undefined, false).bundles[0], rsa, 'RSA signed in every version: RSA, as without --sigalgs')
  const tls12rsaOnlyClient = S.SIGNATURES_SENT | S.SIGNATURES_ECDSA | S.SIGNATURES_ECDSA_P521 | S.SIGNATURES_ECDSA_SUITE
  assert.equal(choiceFor('ECDSA+SHA256:RSA+SHA256').single(tls12rsaOnlyClient, false).bundles[0], rsa, 'the client\'s only ECDSA hash is not listed')
  assert.equal(choiceFor('ECDSA+SHA512:RSA+SHA256').single(tls12rsaOnlyClient, false).bundles[0], ecdsa)
  const untouched = choiceFor('')
  assert.equal(untouched.first.bundles[0], rsa, 'no --sigalgs: the first given')
  assert.equal(untouched.single(undefined, false).bundles[0], rsa)
})
