import crypto from 'node:crypto'
import tls from 'node:tls'
import type { NodeConfig } from '../config/options.js'
import { optionOrigin } from '../config/load.js'
import { ConfigConflictError, ConfigError } from '../errors.js'

export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'
export type TlsProfileName = 'modern' | 'intermediate' | 'old'

/** What a secure context is built with: resolved once in the primary, sent to the workers. */
export interface TlsPolicy {
  profile: TlsProfileName
  minVersion: TlsVersion
  maxVersion: TlsVersion
  /** TLS 1.2-and-older cipher list (OpenSSL syntax); '' when only TLS 1.3 is offered. */
  ciphers: string
  /** TLS 1.3 suites, ':'-separated. */
  ciphersuites: string
  ecdhCurves: string
  preferServerCiphers: boolean
  /** --sigalgs, checked name by name (OpenSSL's ':'-separated syntax); '' = OpenSSL's defaults. */
  sigalgs: string
}

interface Profile {
  versions: [TlsVersion, TlsVersion]
  ciphers: string[]
  ciphersuites: string[]
  curves: string[]
  preferServerCiphers: boolean
}

const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']
/** Key exchange groups of guidelines 6.0 (5.7 had the same without the post-quantum hybrid). */
const GROUPS = ['X25519MLKEM768', 'X25519', 'prime256v1', 'secp384r1']

/**
 * Mozilla's server-side TLS configurations: modern and intermediate as in guidelines 6.0,
 * old as in 5.7 (the last version that has it). Lists are kept whole and in order, as Mozilla
 * asks; OpenSSL skips the ciphers it does not have (this Node's OpenSSL has no 3DES), and
 * groups it does not know (X25519MLKEM768 before OpenSSL 3.5) are dropped when resolving.
 */
export const TLS_PROFILES: Readonly<Record<TlsProfileName, Profile>> = {
  modern: {
    versions: ['TLSv1.3', 'TLSv1.3'],
    ciphers: [],
    ciphersuites: TLS13_SUITES,
    curves: GROUPS,
    preferServerCiphers: false
  },
  intermediate: {
    versions: ['TLSv1.2', 'TLSv1.3'],
    ciphers: [
      'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305'
    ],
    ciphersuites: TLS13_SUITES,
    curves: GROUPS,
    preferServerCiphers: false
  },
  old: {
    versions: ['TLSv1', 'TLSv1.3'],
    ciphers: [
      'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
      'DHE-RSA-AES128-GCM-SHA256', 'DHE-RSA-AES256-GCM-SHA384', 'DHE-RSA-CHACHA20-POLY1305',
      'ECDHE-ECDSA-AES128-SHA256', 'ECDHE-RSA-AES128-SHA256', 'ECDHE-ECDSA-AES128-SHA', 'ECDHE-RSA-AES128-SHA',
      'ECDHE-ECDSA-AES256-SHA384', 'ECDHE-RSA-AES256-SHA384', 'ECDHE-ECDSA-AES256-SHA', 'ECDHE-RSA-AES256-SHA',
      'DHE-RSA-AES128-SHA256', 'DHE-RSA-AES256-SHA256', 'AES128-GCM-SHA256', 'AES256-GCM-SHA384',
      'AES128-SHA256', 'AES256-SHA256', 'AES128-SHA', 'AES256-SHA', 'DES-CBC3-SHA'
    ],
    ciphersuites: TLS13_SUITES,
    curves: GROUPS.slice(1),
    preferServerCiphers: true
  }
}

const VERSION_ORDER: readonly TlsVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']

export type PolicyOptions = Pick<NodeConfig, 'tlsProfile' | 'tlsMinVersion' | 'tlsMaxVersion' | 'ciphers' | 'ciphersuites' | 'ecdhCurves' | 'preferServerCiphers' | 'sigalgs'>

/**
 * The profile with the operator's overrides, checked against the OpenSSL this Node runs with.
 * OpenSSL's own errors ("no cipher match", "Failed to set ECDH curve") name nothing and it
 * silently skips unknown names in a list, so every name given is tried on its own in a
 * throwaway context and a refusal names the option and the value.
 */
export function resolveTlsPolicy (options: PolicyOptions): TlsPolicy {
  const profile = TLS_PROFILES[options.tlsProfile]
  const problems: string[] = []
  // Named as given: TLSFLEET_CIPHERS or a YAML key is not reported as --ciphers.
  if (options.ciphers !== '') problems.push(...cipherListProblems(options.ciphers).map((p) => `${optionOrigin(options, 'ciphers')}: ${p}`))
  if (options.ciphersuites !== '') problems.push(...suiteProblems(options.ciphersuites).map((p) => `${optionOrigin(options, 'ciphersuites')}: ${p}`))
  if (options.ecdhCurves !== '') problems.push(...curveProblems(options.ecdhCurves).map((p) => `${optionOrigin(options, 'ecdh-curves')}: ${p}`))
  if (options.sigalgs !== '') problems.push(...sigalgProblems(options.sigalgs).map((p) => `${optionOrigin(options, 'sigalgs')}: ${p}`))
  if (problems.length > 0) throw new ConfigError(problems)

  const minVersion = options.tlsMinVersion === '' ? profile.versions[0] : options.tlsMinVersion
  const maxVersion = options.tlsMaxVersion === '' ? profile.versions[1] : options.tlsMaxVersion
  const from = (given: string, what: string): string => given === '' ? `the ${options.tlsProfile} profile's ${what}` : `--${what} ${given}`
  if (VERSION_ORDER.indexOf(minVersion) > VERSION_ORDER.indexOf(maxVersion)) {
    throw new ConfigConflictError(`${from(options.tlsMinVersion, 'tls-min-version')} (${minVersion}) is above ${from(options.tlsMaxVersion, 'tls-max-version')} (${maxVersion})`)
  }
  let ciphers = options.ciphers !== '' ? options.ciphers : profile.ciphers.join(':')
  if (ciphers === '' && minVersion !== 'TLSv1.3') {
    throw new ConfigConflictError(`--tls-min-version ${minVersion} needs TLS 1.2 ciphers and the ${options.tlsProfile} profile has none: give --ciphers, or --tls-profile intermediate`)
  }
  // The intermediate profile's ciphers are all TLS 1.2 AEAD suites: TLS 1.0 and 1.1 clients
  // would fail every handshake, while the node lowered OpenSSL's security level for them.
  if (options.ciphers === '' && options.tlsProfile === 'intermediate' && VERSION_ORDER.indexOf(minVersion) < VERSION_ORDER.indexOf('TLSv1.2')) {
    throw new ConfigConflictError(`--tls-min-version ${minVersion} with the intermediate profile: its ciphers all need TLS 1.2, so ${minVersion} clients could not connect; give --tls-profile old (Mozilla's list for them), or --ciphers with suites they can use`)
  }
  // OpenSSL 3 refuses TLS 1.0 and 1.1 above security level 0 (their PRF and signatures use
  // MD5/SHA-1), so a policy that admits them says so in its cipher list.
  if (ciphers !== '' && VERSION_ORDER.indexOf(minVersion) < VERSION_ORDER.indexOf('TLSv1.2') && !ciphers.includes('@SECLEVEL=')) {
    ciphers += ':@SECLEVEL=0'
  }
  const policy: TlsPolicy = {
    profile: options.tlsProfile,
    minVersion,
    maxVersion,
    ciphers: maxVersion === 'TLSv1.3' && minVersion === 'TLSv1.3' ? '' : ciphers,
    // As checked (suiteProblems): OpenSSL's own spelling, so that Node puts every one in the TLS 1.3 list.
    ciphersuites: options.ciphersuites !== '' ? suiteNames(options.ciphersuites).join(':') : profile.ciphersuites.join(':'),
    ecdhCurves: options.ecdhCurves !== '' ? options.ecdhCurves : profile.curves.filter(groupAvailable).join(':'),
    preferServerCiphers: options.preferServerCiphers === '' ? profile.preferServerCiphers : options.preferServerCiphers === 'on',
    sigalgs: sigalgNames(options.sigalgs).join(':')
  }
  try {
    tls.createSecureContext(policyContextOptions(policy))
  } catch (err) {
    throw new ConfigError([`the TLS policy (--tls-profile ${policy.profile} with its overrides) is refused by OpenSSL: ${(err as Error).message}`])
  }
  return policy
}

/** The SecureContext options for a policy (every context of a worker carries them). */
export function policyContextOptions (policy: TlsPolicy): tls.SecureContextOptions & { secureOptions: number } {
  // Node splits one `ciphers` string: TLS_* names are TLS 1.3 suites, the rest the 1.2 list.
  const ciphers = [policy.ciphers, policy.maxVersion === 'TLSv1.3' ? policy.ciphersuites : ''].filter((c) => c !== '').join(':')
  return {
    minVersion: policy.minVersion,
    maxVersion: policy.maxVersion,
    ciphers,
    ecdhCurve: policy.ecdhCurves,
    // SSL_CTX_set1_sigalgs_list: what the node signs its handshake with (and accepts a client certificate's signature in).
    ...(policy.sigalgs !== '' ? { sigalgs: policy.sigalgs } : {}),
    // DHE ciphers need parameters; 'auto' lets OpenSSL size them to the key. Always: a list
    // brings DHE in by keywords (HIGH, ALL, kDHE) as well as by name, and without parameters
    // OpenSSL drops them silently; a list without DHE is not changed by it.
    dhparam: 'auto',
    // Client-initiated renegotiation is refused, as hitch and HAProxy do: each is a full
    // handshake a client can ask for over and over on one connection, past every admission
    // bound (Node's own limit, tls.CLIENT_RENEG_LIMIT, covers only sockets a tls.Server makes).
    secureOptions: crypto.constants.SSL_OP_NO_RENEGOTIATION | (policy.preferServerCiphers ? crypto.constants.SSL_OP_CIPHER_SERVER_PREFERENCE : 0)
  }
}

function cipherListProblems (list: string): string[] {
  const problems: string[] = []
  for (const raw of list.split(/[:, ]/)) {
    const token = raw.trim()
    if (token === '') continue
    if (/^[!+-]?TLS_/.test(token)) {
      problems.push(`"${token}" is a TLS 1.3 suite; TLS 1.3 suites go in --ciphersuites`)
      continue
    }
    // Exclusions and ordering commands cannot add anything unknown; a name that adds ciphers
    // must match at least one on its own.
    if (/^[!+@-]/.test(token)) continue
    if (!opensslAccepts({ ciphers: token, maxVersion: 'TLSv1.2', minVersion: 'TLSv1' })) {
      problems.push(`"${token}" matches no cipher of this node's OpenSSL ${process.versions.openssl}; expected OpenSSL cipher names or keywords (openssl ciphers -v shows them)`)
    }
  }
  if (problems.length === 0 && !opensslAccepts({ ciphers: list, maxVersion: 'TLSv1.2', minVersion: 'TLSv1' })) {
    problems.push(`"${list}" is refused by OpenSSL ${process.versions.openssl} (${opensslError({ ciphers: list, maxVersion: 'TLSv1.2', minVersion: 'TLSv1' })})`)
  }
  return problems
}

/** The names of a --ciphersuites list as OpenSSL spells them (upper case, no spaces). */
function suiteNames (list: string): string[] {
  return list.split(':').map((s) => s.trim().toUpperCase()).filter((s) => s !== '')
}

function suiteProblems (list: string): string[] {
  const known = tls.getCiphers().filter((c) => c.startsWith('tls_')).map((c) => c.toUpperCase())
  return suiteNames(list).filter((s) => !known.includes(s))
    .map((s) => `"${s}" is not a TLS 1.3 suite of this node's OpenSSL; expected some of ${known.join(', ')}`)
}

function curveProblems (list: string): string[] {
  return list.split(':').map((s) => s.trim()).filter((s) => s !== '' && !groupAvailable(s))
    .map((s) => `"${s}" is not a group this node's OpenSSL ${process.versions.openssl} knows; expected names such as X25519, prime256v1, secp384r1`)
}

/** The items of a --sigalgs list, as OpenSSL takes it (":"-separated). */
function sigalgNames (list: string): string[] {
  return list.split(':').map((s) => s.trim()).filter((s) => s !== '')
}

/**
 * OpenSSL refuses a list holding an unknown name with an empty error ("error:00000000:lib(0)::
 * reason(0)"), so each item is tried alone and the first one refused is named.
 */
function sigalgProblems (list: string): string[] {
  const problems = sigalgNames(list).filter((name) => !opensslAccepts({ sigalgs: name }))
    .map((name) => `"${name}" is not a signature algorithm this node's OpenSSL ${process.versions.openssl} accepts; expected ":"-separated names such as ECDSA+SHA256, RSA-PSS+SHA256, rsa_pss_rsae_sha256, ed25519`)
  if (problems.length === 0 && sigalgNames(list).length === 0) problems.push(`"${list}" names no signature algorithm`)
  return problems
}

function groupAvailable (name: string): boolean {
  return opensslAccepts({ ecdhCurve: name })
}

function opensslAccepts (options: tls.SecureContextOptions): boolean {
  return opensslError(options) === undefined
}

function opensslError (options: tls.SecureContextOptions): string | undefined {
  try {
    tls.createSecureContext(options)
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}
