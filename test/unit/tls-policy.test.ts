import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { test } from 'node:test'
import { loadConfig } from '../../src/config/load.js'
import { ConfigConflictError, ConfigError } from '../../src/errors.js'
import { policyContextOptions, resolveTlsPolicy, TLS_PROFILES } from '../../src/tls/tls-policy.js'

const defaults = { tlsProfile: 'intermediate', tlsMinVersion: '', tlsMaxVersion: '', ciphers: '', ciphersuites: '', ecdhCurves: '', preferServerCiphers: '', sigalgs: '' } as const

test('each profile gives Mozilla\'s versions, ciphers and cipher order preference', () => {
  const modern = resolveTlsPolicy({ ...defaults, tlsProfile: 'modern' })
  assert.equal(modern.minVersion, 'TLSv1.3')
  assert.equal(modern.maxVersion, 'TLSv1.3')
  assert.equal(modern.ciphers, '')
  assert.equal(modern.ciphersuites, 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256')
  const intermediate = resolveTlsPolicy(defaults)
  assert.deepEqual([intermediate.minVersion, intermediate.maxVersion], ['TLSv1.2', 'TLSv1.3'])
  assert.equal(intermediate.ciphers, TLS_PROFILES.intermediate.ciphers.join(':'))
  assert.equal(intermediate.preferServerCiphers, false)
  const old = resolveTlsPolicy({ ...defaults, tlsProfile: 'old' })
  assert.deepEqual([old.minVersion, old.maxVersion], ['TLSv1', 'TLSv1.3'])
  assert.equal(old.preferServerCiphers, true)
  // OpenSSL 3 needs security level 0 for TLS 1.0 and 1.1.
  assert.match(old.ciphers, /:@SECLEVEL=0$/)
  assert.match(policyContextOptions(old).dhparam as string, /auto/)
})

test('curves the running OpenSSL lacks are dropped from a profile, never from an operator\'s list', () => {
  const curves = resolveTlsPolicy(defaults).ecdhCurves.split(':')
  assert.ok(curves.includes('X25519') && curves.includes('prime256v1') && curves.includes('secp384r1'))
  for (const curve of curves) assert.ok(TLS_PROFILES.intermediate.curves.includes(curve))
  assert.equal(resolveTlsPolicy({ ...defaults, ecdhCurves: 'prime256v1' }).ecdhCurves, 'prime256v1')
})

test('overrides replace the profile\'s values', () => {
  const policy = resolveTlsPolicy({ ...defaults, tlsMinVersion: 'TLSv1.3', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', ciphersuites: 'TLS_AES_256_GCM_SHA384', ecdhCurves: 'secp384r1', preferServerCiphers: 'on' })
  assert.equal(policy.minVersion, 'TLSv1.3')
  assert.equal(policy.ciphers, '')
  assert.equal(policy.ciphersuites, 'TLS_AES_256_GCM_SHA384')
  assert.equal(policy.ecdhCurves, 'secp384r1')
  assert.equal(policy.preferServerCiphers, true)
  const options = policyContextOptions(resolveTlsPolicy({ ...defaults, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', preferServerCiphers: 'on' }))
  assert.equal(options.ciphers, 'ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256')
  assert.notEqual(options.secureOptions, 0)
})

test('a cipher, suite or curve OpenSSL does not know is refused, naming the option and the value', () => {
  const refused = (overrides: Partial<typeof defaults> | Record<string, string>): string => {
    try {
      resolveTlsPolicy({ ...defaults, ...overrides } as typeof defaults)
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err))
      return err.message
    }
    assert.fail(`accepted ${JSON.stringify(overrides)}`)
  }
  // OpenSSL alone would accept this list, silently dropping the unknown name.
  assert.match(refused({ ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES129-GCM-SHA256' }), /--ciphers: "ECDHE-RSA-AES129-GCM-SHA256" matches no cipher/)
  assert.match(refused({ ciphers: 'HIGH:@SECLEVEL=9' }), /--ciphers: "HIGH:@SECLEVEL=9" is refused by OpenSSL/)
  assert.match(refused({ ciphers: 'TLS_AES_128_GCM_SHA256' }), /--ciphers: "TLS_AES_128_GCM_SHA256" is a TLS 1.3 suite; TLS 1.3 suites go in --ciphersuites/)
  assert.match(refused({ ciphersuites: 'TLS_AES_128_GCM_SHA256:TLS_AES_512_GCM' }), /--ciphersuites: "TLS_AES_512_GCM" is not a TLS 1.3 suite/)
  assert.match(refused({ ecdhCurves: 'X25519:curve9000' }), /--ecdh-curves: "curve9000" is not a group/)
  // Named as the operator gave it: a variable or a YAML key is not reported as a flag.
  const fromEnv = loadConfig({ env: { TLSFLEET_CIPHERSUITES: 'TLS_AES_512_GCM', TLSFLEET_ECDH_CURVES: 'curve9000' } })
  assert.throws(() => resolveTlsPolicy(fromEnv), (err: unknown) => err instanceof ConfigError &&
    /\bTLSFLEET_CIPHERSUITES: "TLS_AES_512_GCM" is not a TLS 1\.3 suite/.test(err.message) && /\bTLSFLEET_ECDH_CURVES: "curve9000" is not a group/.test(err.message) && !err.message.includes('--ciphersuites:'))
  // Exclusions cannot add an unknown cipher: they are not tried on their own.
  assert.doesNotThrow(() => resolveTlsPolicy({ ...defaults, ciphers: 'ECDHE+AESGCM:!aNULL:!NOSUCH' }))
})

test('versions that cannot work together are a conflict', () => {
  assert.throws(() => resolveTlsPolicy({ ...defaults, tlsMinVersion: 'TLSv1.3', tlsMaxVersion: 'TLSv1.2' }), (err: unknown) =>
    err instanceof ConfigConflictError && /--tls-min-version TLSv1.3 \(TLSv1.3\) is above --tls-max-version TLSv1.2/.test(err.message))
  assert.throws(() => resolveTlsPolicy({ ...defaults, tlsProfile: 'modern', tlsMaxVersion: 'TLSv1.2' }), /the modern profile's tls-min-version \(TLSv1.3\) is above/)
  assert.throws(() => resolveTlsPolicy({ ...defaults, tlsProfile: 'modern', tlsMinVersion: 'TLSv1.2' }), /needs TLS 1.2 ciphers and the modern profile has none/)
  // Intermediate's ciphers are all TLS 1.2 suites: TLS 1.0 and 1.1 clients could not connect.
  for (const v of ['TLSv1', 'TLSv1.1'] as const) {
    assert.throws(() => resolveTlsPolicy({ ...defaults, tlsMinVersion: v }), (err: unknown) =>
      err instanceof ConfigConflictError && new RegExp(`--tls-min-version ${v.replace('.', '\\.')} with the intermediate profile: its ciphers all need TLS 1\\.2.*--tls-profile old`).test(err.message))
  }
  // With a cipher list of one's own, or under old, that is the operator's choice.
  assert.equal(resolveTlsPolicy({ ...defaults, tlsMinVersion: 'TLSv1', ciphers: 'ECDHE-RSA-AES128-SHA' }).minVersion, 'TLSv1')
  assert.equal(resolveTlsPolicy({ ...defaults, tlsProfile: 'old' }).minVersion, 'TLSv1')
})

test('--ciphersuites reaches OpenSSL as OpenSSL spells the names it was checked under (lower case and spaces are not dropped)', () => {
  const policy = resolveTlsPolicy({ ...defaults, ciphersuites: 'tls_aes_128_gcm_sha256: TLS_CHACHA20_POLY1305_SHA256' })
  assert.equal(policy.ciphersuites, 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256')
  assert.match(policyContextOptions(policy).ciphers ?? '', /:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256$/)
})

test('every context refuses client-initiated renegotiation', () => {
  for (const preferServerCiphers of ['on', 'off'] as const) {
    const { secureOptions } = policyContextOptions(resolveTlsPolicy({ ...defaults, preferServerCiphers }))
    assert.notEqual(secureOptions & crypto.constants.SSL_OP_NO_RENEGOTIATION, 0)
  }
})

test('--sigalgs: each name is checked against OpenSSL and refused by name (OpenSSL\'s own error names nothing); a good list reaches every context', () => {
  const refused = (sigalgs: string, env: NodeJS.ProcessEnv = {}): string => {
    try {
      resolveTlsPolicy(env.TLSFLEET_SIGALGS !== undefined ? loadConfig({ env }) : { ...defaults, sigalgs })
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err))
      return err.message
    }
    assert.fail(`accepted ${sigalgs}`)
  }
  assert.match(refused('ECDSA+SHA256:RSA+MD5'), /--sigalgs: "RSA\+MD5" is not a signature algorithm this node's OpenSSL [\d.]+ accepts; expected ":"-separated names/)
  assert.match(refused('rsa_pss_rsae_sha256:bogus_sha256'), /--sigalgs: "bogus_sha256" is not a signature algorithm/)
  // Commas are not OpenSSL's separator: the item as given is named.
  assert.match(refused('ECDSA+SHA256,RSA-PSS+SHA256'), /--sigalgs: "ECDSA\+SHA256,RSA-PSS\+SHA256" is not a signature algorithm/)
  assert.match(refused('', { TLSFLEET_SIGALGS: 'ECDSA+SHA999' }), /^TLSFLEET_SIGALGS: "ECDSA\+SHA999"/m)
  const policy = resolveTlsPolicy({ ...defaults, sigalgs: ' ECDSA+SHA256 : rsa_pss_rsae_sha256 ' })
  assert.equal(policy.sigalgs, 'ECDSA+SHA256:rsa_pss_rsae_sha256')
  assert.equal(policyContextOptions(policy).sigalgs, 'ECDSA+SHA256:rsa_pss_rsae_sha256')
  // Not given: OpenSSL's defaults, nothing set.
  assert.equal('sigalgs' in policyContextOptions(resolveTlsPolicy(defaults)), false)
})
