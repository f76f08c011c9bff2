import tls from 'node:tls'
import { CertificateError, TlsfleetError } from '../errors.js'
import { readBoundedFile, readProblem } from '../util/bounded-file.js'
import { loadCertificateFile, type CertificateBundle } from './certificates.js'
import { loadClientAuthFiles, type ClientAuthFiles, type ClientVerify } from './client-auth.js'
import { CrtListProblem, hasKeywords, parseCrtList, type CrtListKeywords } from './crt-list.js'
import { checkBundleUsable } from './secure-contexts.js'
import { resolveTlsPolicy, TLS_PROFILES, type PolicyOptions, type TlsPolicy } from './tls-policy.js'
import type { LineSettings } from './tls-material.js'

/** The global options a crt-list line's keywords override (each keyword not given keeps them). */
export interface CrtListGlobals {
  policyOptions: PolicyOptions
  clientVerify: ClientVerify
  alpn: string[]
  sessionTickets: boolean
}

export interface LoadedCrtLine {
  bundle: CertificateBundle
  names: string[]
  excluded: string[]
  settings?: LineSettings
}

/** A problem of one line's keywords (the caller names the file and the line). */
class LineProblem extends Error {}

/** A crt-list file is small: 4 MiB holds tens of thousands of lines. */
const CRT_LIST_LIMIT = { maxBytes: 4 * 1024 * 1024, what: 'a crt-list file' }

/** The flag each policy keyword overrides, for naming it in the policy's refusals. */
const KEYWORD_FLAGS: ReadonlyArray<[keyof CrtListKeywords, string, string]> = [
  ['ciphers', '--ciphers', 'ciphers'],
  ['ciphersuites', '--ciphersuites', 'ciphersuites'],
  ['curves', '--ecdh-curves', 'curves'],
  ['sigalgs', '--sigalgs', 'sigalgs'],
  ['sslMinVer', '--tls-min-version', 'ssl-min-ver'],
  ['sslMaxVer', '--tls-max-version', 'ssl-max-ver']
]

/**
 * Every line of the crt-list files, in order, each certificate read and checked under its
 * line's settings. Any problem refuses the whole load (a start exits, a SIGHUP keeps the
 * current material) with a CertificateError naming the file, the line and the keyword or
 * problem. `usable`: the check of a certificate under the global policy.
 */
export function loadCrtLists (files: string[], origin: string, globals: CrtListGlobals, usable: (bundle: CertificateBundle) => void, globalAuth: () => ClientAuthFiles): LoadedCrtLine[] {
  const bundles = new Map<string, CertificateBundle>()
  const policies = new Map<string, TlsPolicy>()
  const loaded: LoadedCrtLine[] = []
  for (const file of files) {
    let text: string
    try {
      text = readBoundedFile(file, CRT_LIST_LIMIT).toString('utf8')
    } catch (err) {
      throw new CertificateError(file, readProblem(err), origin)
    }
    let lines
    try {
      lines = parseCrtList(text, file)
    } catch (err) {
      if (err instanceof CrtListProblem) throw new CertificateError(file, err.line > 0 ? `line ${err.line}: ${err.problem}` : err.problem, origin)
      throw err
    }
    for (const line of lines) {
      const at = `${origin} "${file}" line ${line.line}`
      const refuse = (problem: string): CertificateError => new CertificateError(file, `line ${line.line}: ${problem}`, origin)
      try {
        let bundle = bundles.get(line.crtFile)
        if (bundle === undefined) {
          bundle = loadCertificateFile(line.crtFile)
          bundles.set(line.crtFile, bundle)
        }
        const settings = hasKeywords(line.keywords) ? lineSettings(line.keywords, at, globals, globalAuth, policies) : undefined
        if (settings === undefined) usable(bundle)
        else checkBundleUsable(bundle, settings.policy, 'sigalgs')
        loaded.push({ bundle, names: line.names, excluded: line.excluded, ...(settings !== undefined ? { settings } : {}) })
      } catch (err) {
        if (err instanceof TlsfleetError || err instanceof LineProblem) throw refuse(err.message)
        throw err
      }
    }
  }
  return loaded
}

/** A line's settings: its keywords over the global options, checked as the global ones are. */
function lineSettings (kw: CrtListKeywords, at: string, globals: CrtListGlobals, globalAuth: () => ClientAuthFiles, policies: Map<string, TlsPolicy>): LineSettings {
  const clientVerify = kw.verify ?? globals.clientVerify
  const given = globalAuth()
  let clientAuth = given
  if (kw.caFile !== undefined || kw.crlFile !== undefined) {
    const own = loadClientAuthFiles(kw.caFile ?? '', kw.crlFile ?? '', { clientCa: 'ca-file', crl: 'crl-file' })
    clientAuth = {
      ...(own.ca ?? given.ca) !== undefined ? { ca: own.ca ?? given.ca } : {},
      ...(own.crl ?? given.crl) !== undefined ? { crl: own.crl ?? given.crl } : {}
    }
  }
  if (clientVerify !== 'none' && clientAuth.ca === undefined) {
    throw new LineProblem(`${kw.verify !== undefined ? `verify ${kw.verify === 'require' ? 'required' : kw.verify}` : `--client-verify ${clientVerify}`} needs ca-file on the line or --client-ca`)
  }
  if (clientVerify === 'none' && (kw.caFile !== undefined || kw.crlFile !== undefined)) {
    throw new LineProblem(`${kw.caFile !== undefined ? 'ca-file' : 'crl-file'} has no effect with verify none: give verify optional or required`)
  }
  if (kw.crlFile !== undefined && clientAuth.ca === undefined) throw new LineProblem('crl-file needs ca-file on the line or --client-ca (the CAs whose revocations it lists)')
  return {
    policy: linePolicy(kw, globals, policies),
    clientVerify,
    clientAuth,
    alpn: kw.alpn ?? globals.alpn,
    sessionTickets: kw.noTlsTickets === true ? false : globals.sessionTickets,
    key: JSON.stringify(Object.entries({ ...kw, caFile: undefined, crlFile: undefined }).filter(([, v]) => v !== undefined).sort(([a], [b]) => a < b ? -1 : 1)),
    origin: at
  }
}

/** Mozilla's old list, less what this OpenSSL lacks (3DES): given as ciphers, each name must match. */
function oldCiphers (): string {
  const known = new Set(tls.getCiphers())
  return TLS_PROFILES.old.ciphers.filter((c) => known.has(c.toLowerCase())).join(':')
}

/**
 * The global policy with the line's keywords over it; refusals name the line's keyword where
 * it gave the value. A line that lowers ssl-min-ver below TLS 1.2 without ciphers (its own or
 * --ciphers) gets Mozilla's old list: the intermediate profile's ciphers all need TLS 1.2.
 */
function linePolicy (kw: CrtListKeywords, globals: CrtListGlobals, policies: Map<string, TlsPolicy>): TlsPolicy {
  const base = globals.policyOptions
  const legacy = kw.sslMinVer === 'TLSv1' || kw.sslMinVer === 'TLSv1.1'
  const options: PolicyOptions = {
    ...base,
    ciphers: kw.ciphers ?? (legacy && base.ciphers === '' ? oldCiphers() : base.ciphers),
    ciphersuites: kw.ciphersuites ?? base.ciphersuites,
    ecdhCurves: kw.curves ?? base.ecdhCurves,
    sigalgs: kw.sigalgs ?? base.sigalgs,
    tlsMinVersion: kw.sslMinVer ?? base.tlsMinVersion,
    tlsMaxVersion: kw.sslMaxVer ?? base.tlsMaxVersion
  }
  const key = JSON.stringify(options)
  const known = policies.get(key)
  if (known !== undefined) return known
  let policy: TlsPolicy
  try {
    policy = resolveTlsPolicy(options)
  } catch (err) {
    if (!(err instanceof TlsfleetError)) throw err
    let message = err.message
    for (const [field, flag, keyword] of KEYWORD_FLAGS) {
      if (kw[field] !== undefined) message = message.replaceAll(flag, keyword)
    }
    throw new LineProblem(`its TLS settings are refused: ${message}`)
  }
  policies.set(key, policy)
  return policy
}
