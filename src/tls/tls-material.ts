import { CertificateError } from '../errors.js'
import type { Logger } from '../util/logger.js'
import { certificateListBytes, loadCertificateDir, loadCertificateFile, parseCertificatePem, OPENSSL_CLIENT_MAX_CERT_LIST, type CertificateBundle } from './certificates.js'
import { clientAuthWarnings, loadClientAuthFiles, type ClientAuthFiles, type ClientVerify } from './client-auth.js'
import { loadCrtLists, type CrtListGlobals } from './crt-list-load.js'
import { warnLooseKeyFile } from './pem-files.js'
import { ensureSelfSignedCertificate } from './self-signed.js'
import type { TlsPolicy } from './tls-policy.js'

/**
 * Every file-borne input of the secure contexts, as the primary reads and checks it at start
 * and on SIGHUP, and sends it to the workers: certificates (--cert, then --cert-dir), the
 * client CA and the CRL. Workers never read these files.
 */
export interface TlsMaterial {
  /** Every certificate served, each file once, in the default order (--cert, --crt-list, --cert-dir). */
  certificates: CertificateBundle[]
  clientAuth: ClientAuthFiles
  /**
   * With --crt-list: what is served, in order (the first one is the default certificate), each
   * a certificate with its names and settings. Absent: each of `certificates` under its own
   * names and the global settings.
   */
  served?: ServedCertificate[]
}

/** One certificate as served: a --cert or --cert-dir file, or a crt-list line. */
export interface ServedCertificate {
  /** Index into TlsMaterial.certificates. */
  certificate: number
  /**
   * The SNI names it serves (`*.domain` wildcards allowed); empty with no `excluded`: the
   * certificate's own names (a crt-list line with only `!` filters serves none, as in HAProxy).
   */
  names: string[]
  /** Names a wildcard of `names` covers that it is not served for (crt-list `!name`). */
  excluded: string[]
  /** A crt-list line's settings; absent: the global options. */
  settings?: LineSettings
}

/**
 * A crt-list line's TLS settings, resolved and checked in the primary: each keyword not given
 * on the line holds the global option's value.
 */
export interface LineSettings {
  policy: TlsPolicy
  clientVerify: ClientVerify
  clientAuth: ClientAuthFiles
  alpn: string[]
  sessionTickets: boolean
  /**
   * The line's keywords (canonical text; ca-file and crl-file by their content, in clientAuth): part of the session-ID context of
   * its certificate, so a session never resumes under a line with other settings.
   */
  key: string
  /** Where it was read (`--crt-list "FILE" line N`), for the log. */
  origin: string
}

export interface TlsMaterialSources {
  cert: string[]
  certDir: string
  /**
   * How --cert and --cert-dir were given (`TLSFLEET_CERT`, `node.yaml key "cert"`; config/load.ts
   * optionOrigin), to name a refused file by them; `--cert`, `--cert-dir` when absent.
   */
  certOrigin?: string
  certDirOrigin?: string
  /** How --client-ca and --crl were given, likewise. */
  clientCaOrigin?: string
  crlOrigin?: string
  stateDir: string
  clientCa: string
  crl: string
  /** Who may own --state-dir and the self-signed certificate in it (safe-files.ts trustedOwners, with --user's). */
  stateOwners?: readonly number[]
  /**
   * Throws a CertificateError when a bundle cannot become a secure context where the workers
   * will build it (a key too small for the policy's security level): checked here, so a
   * worker never fails on it after the primary accepted it.
   */
  usable?: (bundle: CertificateBundle) => void
  /** --crt-list files, and the global settings their lines' keywords override. */
  crtList?: string[]
  crtListOrigin?: string
  crtListGlobals?: CrtListGlobals
}

/** What a load gave, and how many --cert-dir files it refused (each logged by name). */
export interface LoadedTlsMaterial { material: TlsMaterial; refusedFiles: number }

/**
 * A --cert file that is broken refuses the whole load (start or reload; on reload the current
 * material stays). A broken file in --cert-dir is logged by name and skipped; the directory
 * must still yield at least one certificate when it is the only source.
 */
export async function loadTlsMaterial (sources: TlsMaterialSources, log: Logger): Promise<LoadedTlsMaterial> {
  const usable = sources.usable ?? (() => {})
  // The global client CA and CRL, read once (crt-list lines without ca-file/crl-file take them).
  let globalAuth: ClientAuthFiles | undefined
  const clientAuthOf = (): ClientAuthFiles => {
    globalAuth ??= loadClientAuthFiles(sources.clientCa, sources.crl, {
      ...(sources.clientCaOrigin !== undefined ? { clientCa: sources.clientCaOrigin } : {}),
      ...(sources.crlOrigin !== undefined ? { crl: sources.crlOrigin } : {})
    })
    return globalAuth
  }
  const certOrigin = sources.certOrigin ?? '--cert'
  const certDirOrigin = sources.certDirOrigin ?? '--cert-dir'
  // A refused --cert file is named by the option that gave it, as --client-ca's and --crl's are.
  const certificates = sources.cert.map((file) => namedBy(certOrigin, () => {
    const bundle = loadCertificateFile(file)
    usable(bundle)
    return bundle
  }))
  // Each crt-list file, then --cert-dir: a line's settings win over a directory file for a name both serve.
  const crtList = sources.crtList ?? []
  let served: ServedCertificate[] | undefined
  const crtListFiles = new Set<string>()
  if (crtList.length > 0) {
    const globals = sources.crtListGlobals
    if (globals === undefined) throw new Error('--crt-list needs the global TLS settings')
    const lines = loadCrtLists(crtList, sources.crtListOrigin ?? '--crt-list', globals, usable, clientAuthOf)
    served = certificates.map((_, i) => ({ certificate: i, names: [], excluded: [] }))
    for (const line of lines) {
      crtListFiles.add(line.bundle.path)
      let index = certificates.findIndex((c) => c.path === line.bundle.path)
      if (index < 0) index = certificates.push(line.bundle) - 1
      served.push({ certificate: index, names: line.names, excluded: line.excluded, ...(line.settings !== undefined ? { settings: line.settings } : {}) })
    }
  }
  let refusedFiles = 0
  if (sources.certDir !== '') {
    const dir = loadCertificateDir(sources.certDir)
    dir.refused = dir.refused.map((err) => err.namedBy(`${certDirOrigin} file`))
    const bundles = dir.bundles.filter((bundle) => {
      try {
        usable(bundle)
        return true
      } catch (err) {
        if (!(err instanceof CertificateError)) throw err
        dir.refused.push(err.namedBy(`${certDirOrigin} file`))
        return false
      }
    })
    // Its message names the file and the problem; a stack would repeat at every SIGHUP.
    for (const err of dir.refused) log.error({ error: err.message, code: err.code }, 'certificate file refused; the other files of --cert-dir still load')
    refusedFiles = dir.refused.length
    if (bundles.length === 0 && certificates.length === 0) throw new CertificateError(sources.certDir, 'no usable certificate in it', certDirOrigin)
    for (const bundle of bundles) {
      if (certificates.some((c) => c.path === bundle.path)) continue
      served?.push({ certificate: certificates.length, names: [], excluded: [] })
      certificates.push(bundle)
    }
  }
  // Served all the same (a client that does not verify still connects), but said at every load.
  for (const bundle of certificates) {
    warnLooseKeyFile(sources.cert.includes(bundle.path) ? '--cert' : crtListFiles.has(bundle.path) ? '--crt-list' : '--cert-dir', bundle.path, log)
    const until = Date.parse(bundle.notAfter)
    if (Number.isFinite(until) && until < Date.now()) log.warn({ file: bundle.path, names: bundle.names, notAfter: bundle.notAfter }, 'certificate expired: clients that verify it refuse it; renew it (then SIGHUP)')
    const bytes = certificateListBytes(bundle)
    if (bytes > OPENSSL_CLIENT_MAX_CERT_LIST) log.warn({ file: bundle.path, names: bundle.names, bytes, limit: OPENSSL_CLIENT_MAX_CERT_LIST }, 'certificate chain too large: OpenSSL clients refuse a certificate list over 100 KiB (excessive message size); keep only the leaf and the intermediates up to the root')
  }
  if (certificates.length === 0) {
    const { file, created, pem } = await ensureSelfSignedCertificate(sources.stateDir, sources.stateOwners)
    if (created) log.warn({ file }, 'no --cert given: generated a self-signed certificate for localhost')
    // Its RSA key too must be one --sigalgs signs with: else it would fail every handshake.
    const generated = parseCertificatePem(pem, file)
    usable(generated)
    certificates.push(generated)
  }
  const clientAuth = clientAuthOf()
  for (const warning of clientAuthWarnings(clientAuth)) log.warn({ ...warning.fields, crl: sources.crl }, warning.message)
  for (const line of served ?? []) {
    if (line.settings === undefined) continue
    for (const warning of clientAuthWarnings(line.settings.clientAuth)) log.warn({ ...warning.fields, line: line.settings.origin }, warning.message)
  }
  return { material: { certificates, clientAuth, ...(served !== undefined ? { served } : {}) }, refusedFiles }
}

/** `run`, a CertificateError it throws named by `origin` instead of as "certificate". */
function namedBy<T> (origin: string, run: () => T): T {
  try {
    return run()
  } catch (err) {
    throw err instanceof CertificateError ? err.namedBy(origin) : err
  }
}
