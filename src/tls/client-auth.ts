import crypto from 'node:crypto'
import tls from 'node:tls'
import * as pkijs from 'pkijs'
import { ConfigError } from '../errors.js'
import { CERTIFICATE_BLOCK, CRL_LIMIT, readCaCertificates, readPemFile } from './pem-files.js'
import { pemBody, RevokedCertificates } from './revoked-certificates.js'

export type ClientVerify = 'none' | 'optional' | 'require'

/** The client CA and CRL as the primary read and checked them (PEM text, sent to the workers). */
export interface ClientAuthFiles {
  ca?: string
  /** One PEM block per CRL: Node reads only the first CRL of a string, every one of an array. */
  crl?: string[]
}

const CRL_BLOCK = /-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g

/** How --client-ca and --crl were given (config/load.ts optionOrigin: TLSFLEET_CRL, a YAML key); the flags when absent. */
export interface ClientAuthOrigins { clientCa?: string; crl?: string }

/** Read --client-ca and --crl; every refusal names the option as given, the file and the problem. */
export function loadClientAuthFiles (caFile: string, crlFile: string, origins: ClientAuthOrigins = {}): ClientAuthFiles {
  const files: ClientAuthFiles = {}
  const crlOrigin = origins.crl ?? '--crl'
  if (caFile !== '') files.ca = readCaCertificates(origins.clientCa ?? '--client-ca', caFile)
  if (crlFile !== '') {
    const text = readPemFile(crlOrigin, crlFile, CRL_LIMIT)
    const blocks = text.match(CRL_BLOCK) ?? []
    if (blocks.length === 0) throw new ConfigError([`${crlOrigin} "${crlFile}": no PEM CRL in it (expected -----BEGIN X509 CRL----- blocks)`])
    // Each CA of a chain has its own CRL (a root's and an intermediate's): all must load.
    files.crl = blocks.map((block) => block + '\n')
    try {
      tls.createSecureContext({ ...(files.ca !== undefined ? { ca: files.ca } : {}), crl: files.crl })
    } catch (err) {
      throw new ConfigError([`${crlOrigin} "${crlFile}": OpenSSL cannot load it: ${(err as Error).message}`])
    }
    try {
      // What the workers read it with, for resumed sessions: refused here, not in a worker.
      void new RevokedCertificates(files.crl)
    } catch (err) {
      throw new ConfigError([`${crlOrigin} "${crlFile}": unreadable revocation list: ${(err as Error).message}`])
    }
  }
  return files
}

/** Something about --client-ca and --crl that refuses clients although both files load. */
export interface ClientAuthWarning {
  message: string
  fields: Record<string, string>
}

/**
 * With --crl, OpenSSL checks every certificate of a client's chain against a CRL of its issuer
 * (Node sets X509_V_FLAG_CRL_CHECK_ALL), so a CA of --client-ca without a CRL of its own, or a
 * CRL past its nextUpdate, refuses every client below it (UNABLE_TO_GET_CRL, CRL_HAS_EXPIRED),
 * while the node starts or reloads as if all were well. Said at every load, by name.
 */
export function clientAuthWarnings (files: ClientAuthFiles, now = Date.now()): ClientAuthWarning[] {
  if (files.crl === undefined || files.ca === undefined) return []
  const warnings: ClientAuthWarning[] = []
  const crls = files.crl.map((block) => pkijs.CertificateRevocationList.fromBER(pemBody(block)))
  for (const block of files.ca.match(CERTIFICATE_BLOCK) ?? []) {
    const ca = new crypto.X509Certificate(block)
    const subject = pkijs.Certificate.fromBER(ca.raw).subject
    if (crls.some((crl) => crl.issuer.isEqual(subject))) continue
    warnings.push({
      message: '--crl has no CRL of this --client-ca certificate: OpenSSL refuses every client certificate it issued (UNABLE_TO_GET_CRL); add its CRL to --crl (then SIGHUP)',
      fields: { ca: ca.subject.replaceAll('\n', ', ') }
    })
  }
  for (const crl of crls) {
    const issuer = nameText(crl.issuer)
    const nextUpdate = crl.nextUpdate?.value
    if (nextUpdate !== undefined && nextUpdate.getTime() < now) {
      warnings.push({
        message: 'a CRL of --crl is past its nextUpdate: OpenSSL refuses every client certificate of its CA (CRL_HAS_EXPIRED); fetch a fresh CRL (then SIGHUP)',
        fields: { issuer, nextUpdate: nextUpdate.toISOString() }
      })
    }
    const thisUpdate = crl.thisUpdate.value
    if (thisUpdate.getTime() > now) {
      warnings.push({
        message: 'a CRL of --crl is not valid yet (thisUpdate ahead of this clock): OpenSSL refuses every client certificate of its CA (CRL_NOT_YET_VALID); check the clock',
        fields: { issuer, thisUpdate: thisUpdate.toISOString() }
      })
    }
  }
  return warnings
}

/** A distinguished name as `CN=..., O=...`, enough to tell an operator which CA is meant. */
function nameText (name: pkijs.RelativeDistinguishedNames): string {
  const short: Record<string, string> = { '2.5.4.3': 'CN', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.6': 'C' }
  return name.typesAndValues.map((tv) => `${short[tv.type] ?? tv.type}=${String(tv.value.valueBlock.value)}`).join(', ')
}

/** The base of every certificate's own session-ID context when --session-id-context is not given. */
export const DEFAULT_SESSION_ID_CONTEXT = 'tlsfleet'

/**
 * The session-ID context secure contexts carry: with --session-id-context, every one of them;
 * without, the base each certificate choice's own is derived from (secure-contexts.ts
 * choiceSessionIdContext). Without client certificates it is that value as given (so a farm,
 * or hitch, shares sessions). With them it also
 * covers the policy and the CA certificates: OpenSSL resumes a session only under the context
 * it was created in, and a resumed session skips certificate verification, so a session made
 * where no certificate was asked for (or under another CA) must never resume here. Nodes resume
 * each other's mTLS sessions only with the same policy and the same CA file.
 */
export function sessionIdContextFor (base: string, verify: ClientVerify, ca: string | undefined): string {
  if (verify === 'none') return base
  // 32 characters: OpenSSL's limit for a session-ID context.
  return crypto.createHash('sha256').update(`${base}\0${verify}\0${ca ?? ''}`).digest('base64url').slice(0, 32)
}

/** The client certificate of an established connection, as the backend hears of it. */
export interface ClientCertificate {
  subject: string
  commonName?: string
  /** Sent in this handshake (not carried by a resumed session). */
  thisConnection: boolean
}

export type ClientCheck = { ok: true; certificate?: ClientCertificate } | { ok: false; reason: string }

interface VerifyHandle { verifyError: () => (Error & { code?: string }) | null }

/**
 * After the handshake: may this client go on? tls.Server runs the same check in its own
 * 'secure' handler (onServerSocketSecure), which sockets built by hand do not get: OpenSSL's
 * verify callback accepts everything during the handshake and Node reads the result after.
 * `reason` is OpenSSL's code (CERT_REVOKED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...) or "missing".
 */
export function checkClientCertificate (socket: tls.TLSSocket, verify: ClientVerify, revoked?: RevokedCertificates): ClientCheck {
  const peer = socket.getPeerX509Certificate()
  if (peer === undefined) return verify === 'require' ? { ok: false, reason: 'missing' } : { ok: true }
  // `_handle` is the TLSWrap; Node's own server check reads verifyError() from it the same way.
  const handle = (socket as unknown as { _handle: VerifyHandle | null })._handle
  const error = handle?.verifyError() ?? null
  if (error !== null) return { ok: false, reason: error.code ?? 'unverified' }
  const reused = socket.isSessionReused()
  // A resumed session was not verified now: its certificate may have been revoked since.
  if (reused && revoked?.has(peer) === true) return { ok: false, reason: 'CERT_REVOKED' }
  // From the parsed name, not from `peer.subject`, whose text escapes RFC 2253's specials
  // (`Doe\, John`): the backend gets the CN as written, as HAProxy sends it.
  const cn = socket.getPeerCertificate().subject?.CN as string | string[] | undefined
  const commonName = Array.isArray(cn) ? cn[0] : cn
  return {
    ok: true,
    certificate: { subject: peer.subject, ...(commonName !== undefined ? { commonName } : {}), thisConnection: !reused }
  }
}
