import { SIGNATURES_ECDSA_P256, SIGNATURES_ECDSA_P384, SIGNATURES_ECDSA_P521 } from './client-hello.js'
import type { TlsPolicy, TlsVersion } from './tls-policy.js'

/**
 * The keys a --sigalgs list lets the node sign its handshakes with, by TLS version. OpenSSL
 * serves no certificate that no listed algorithm signs with (tls_choose_sigalg: "no suitable
 * signature algorithm"), and a context holding one builds all the same: this is what the
 * primary refuses such a file by, and what certificate-choice.ts chooses by.
 *
 * Key types are Node's (KeyObject.asymmetricKeyType): rsa, rsa-pss, ec, ed25519, ed448, dsa.
 * TLS 1.3 binds an ECDSA scheme to a curve, so its EC entries are `ec:<curve>`.
 */
export interface SigningKeys {
  /** Some name is not known here (OpenSSL took it): every key is taken as signable, as before. */
  any: boolean
  tls12: ReadonlySet<string>
  tls13: ReadonlySet<string>
  /** SIGNATURES_ECDSA_P256/P384/P521: the ECDSA hashes listed (SHA-256/384/512), as client-hello.ts reads a client's. */
  ecdsaSchemes: number
}

/** OpenSSL's defaults (no --sigalgs): every key it has a scheme for. */
export const ANY_SIGNING_KEYS: SigningKeys = Object.freeze({ any: true, tls12: new Set<string>(), tls13: new Set<string>(), ecdsaSchemes: SIGNATURES_ECDSA_P256 | SIGNATURES_ECDSA_P384 | SIGNATURES_ECDSA_P521 })

const HASH_BITS: Readonly<Record<string, { bit: number; curve: string }>> = {
  sha256: { bit: SIGNATURES_ECDSA_P256, curve: 'prime256v1' },
  sha384: { bit: SIGNATURES_ECDSA_P384, curve: 'secp384r1' },
  sha512: { bit: SIGNATURES_ECDSA_P521, curve: 'secp521r1' }
}
const CURVE_HASHES: Readonly<Record<string, string>> = { secp256r1: 'sha256', secp384r1: 'sha384', secp521r1: 'sha512' }
const HASHES = new Set(['sha1', 'sha224', 'sha256', 'sha384', 'sha512'])

/** One listed name, as OpenSSL reads it (case aside): what it signs with, in which versions. */
interface Scheme { tls12?: string; tls13?: string; ecdsaBit?: number }

/**
 * RFC 8446 names (rsa_pss_rsae_sha256, ecdsa_secp384r1_sha384, ed25519, ...) and OpenSSL's
 * ALG+HASH pairs (either order: RSA+SHA256, RSA-PSS+SHA256 / PSS+SHA256, ECDSA+SHA384,
 * DSA+SHA256). RSA+HASH is rsa_pkcs1_HASH, which TLS 1.3 never signs a handshake with; an
 * RSA-PSS pair is rsa_pss_rsae_HASH (OpenSSL takes the first of its table), an RSA key's.
 */
function scheme (raw: string): Scheme | undefined {
  const name = raw.toLowerCase()
  if (name.includes('+')) {
    const parts = name.split('+')
    const hash = parts.find((p) => HASHES.has(p))
    const sig = parts.find((p) => !HASHES.has(p))
    if (parts.length !== 2 || hash === undefined || sig === undefined) return undefined
    if (sig === 'rsa') return { tls12: 'rsa' }
    if (sig === 'rsa-pss' || sig === 'pss') return hash === 'sha1' || hash === 'sha224' ? { tls12: 'rsa' } : { tls12: 'rsa', tls13: 'rsa' }
    if (sig === 'dsa') return { tls12: 'dsa' }
    if (sig === 'ecdsa') {
      const bits = HASH_BITS[hash]
      return bits === undefined ? { tls12: 'ec' } : { tls12: 'ec', tls13: `ec:${bits.curve}`, ecdsaBit: bits.bit }
    }
    return undefined
  }
  if (name === 'ed25519' || name === 'ed448') return { tls12: name, tls13: name }
  let m = /^rsa_pkcs1_(sha\d+)$/.exec(name)
  if (m !== null) return { tls12: 'rsa' }
  m = /^rsa_pss_(rsae|pss)_(sha\d+)$/.exec(name)
  if (m !== null) return { tls12: m[1] === 'rsae' ? 'rsa' : 'rsa-pss', tls13: m[1] === 'rsae' ? 'rsa' : 'rsa-pss' }
  m = /^ecdsa_(secp\d+r1)_(sha\d+)$/.exec(name)
  if (m !== null && CURVE_HASHES[m[1] ?? ''] === m[2]) {
    const bits = HASH_BITS[m[2] ?? ''] as { bit: number; curve: string }
    return { tls12: 'ec', tls13: `ec:${bits.curve}`, ecdsaBit: bits.bit }
  }
  if (/^ecdsa_(sha1|sha224)$/.test(name)) return { tls12: 'ec' }
  if (/^dsa_(sha\d+)$/.test(name)) return { tls12: 'dsa' }
  return undefined
}

/** What a --sigalgs value (':'-separated, as checked in tls-policy.ts) signs with; '' is OpenSSL's defaults. */
export function signingKeys (sigalgs: string): SigningKeys {
  const names = sigalgs.split(':').map((s) => s.trim()).filter((s) => s !== '')
  if (names.length === 0) return ANY_SIGNING_KEYS
  const tls12 = new Set<string>()
  const tls13 = new Set<string>()
  let ecdsaSchemes = 0
  for (const name of names) {
    const s = scheme(name)
    // A name OpenSSL knows and this table does not (brainpool, ML-DSA, ...): no refusal, no choice made on a guess.
    if (s === undefined) return ANY_SIGNING_KEYS
    if (s.tls12 !== undefined) tls12.add(s.tls12)
    if (s.tls13 !== undefined) tls13.add(s.tls13)
    ecdsaSchemes |= s.ecdsaBit ?? 0
  }
  return { any: false, tls12, tls13, ecdsaSchemes }
}

/** Whether the node can sign a TLS 1.2 (tls13 false) or TLS 1.3 handshake with this key. */
export function signsWith (keys: SigningKeys, keyType: string, curve: string | undefined, tls13: boolean): boolean {
  if (keys.any) return true
  return tls13 ? keys.tls13.has(keyType === 'ec' ? `ec:${curve ?? ''}` : keyType) : keys.tls12.has(keyType)
}

const VERSION_ORDER: readonly TlsVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']

/**
 * The TLS versions of `policy` the node can sign a handshake with this key in. TLS 1.0 and 1.1
 * have no signature_algorithms: OpenSSL signs them whatever --sigalgs says.
 */
export function signableVersions (keys: SigningKeys, keyType: string, curve: string | undefined, policy: Pick<TlsPolicy, 'minVersion' | 'maxVersion'>): TlsVersion[] {
  const min = VERSION_ORDER.indexOf(policy.minVersion)
  const max = VERSION_ORDER.indexOf(policy.maxVersion)
  return VERSION_ORDER.filter((v, i) => i >= min && i <= max && (i < 2 || signsWith(keys, keyType, curve, v === 'TLSv1.3')))
}

/** Whether every version of `policy` can sign with this key. */
export function signsInEveryVersion (keys: SigningKeys, keyType: string, curve: string | undefined, policy: Pick<TlsPolicy, 'minVersion' | 'maxVersion'>): boolean {
  const min = VERSION_ORDER.indexOf(policy.minVersion)
  const max = VERSION_ORDER.indexOf(policy.maxVersion)
  return signableVersions(keys, keyType, curve, policy).length === max - min + 1
}

/** A --sigalgs name that signs with this key type, for a refusal's remedy. */
const REMEDY: Readonly<Record<string, string>> = {
  rsa: 'rsa_pss_rsae_sha256 (RSA-PSS+SHA256; RSA+SHA256 signs TLS 1.2 only)',
  'rsa-pss': 'rsa_pss_pss_sha256',
  ec: 'the ECDSA scheme of its curve (ECDSA+SHA256 for P-256, ECDSA+SHA384 for P-384, ECDSA+SHA512 for P-521)',
  ed25519: 'ed25519',
  ed448: 'ed448'
}

/**
 * Why the node could never serve a certificate with this key under `policy` (no version it
 * allows has a listed algorithm that signs with the key), or undefined when some version can.
 * `origin`: --sigalgs as given (TLSFLEET_SIGALGS, a YAML key).
 */
export function unsignableProblem (keys: SigningKeys, keyType: string, curve: string | undefined, policy: Pick<TlsPolicy, 'minVersion' | 'maxVersion' | 'sigalgs'>, origin: string): string | undefined {
  if (signableVersions(keys, keyType, curve, policy).length > 0) return undefined
  const only = policy.minVersion === policy.maxVersion ? ` in ${policy.minVersion.replace('TLSv', 'TLS ')}` : ''
  const remedy = REMEDY[keyType]
  return `no signature algorithm of ${origin} "${policy.sigalgs}" signs with its ${keyType} key${curve !== undefined ? ` (${curve})` : ''}${only}, so OpenSSL would fail every handshake with it: ${remedy !== undefined ? `add ${remedy} to ${origin}, or ` : ''}serve a certificate with another key`
}
