import crypto from 'node:crypto'
import * as pkijs from 'pkijs'

/** Why a response was not kept; the reason label of tlsfleet_ocsp_refresh_failures_total. */
export type OcspFailure =
  | 'unreachable' | 'http_status' | 'too_large' | 'malformed' | 'not_successful'
  | 'unverified' | 'wrong_certificate' | 'unknown_status' | 'expired' | 'not_yet_valid'

export class OcspResponseError extends Error {
  constructor (readonly reason: OcspFailure, message: string) {
    super(message)
    this.name = 'OcspResponseError'
  }
}

/** A certificate that can be stapled: its leaf and issuer (the next certificate of its chain). */
export interface OcspSubject {
  leaf: crypto.X509Certificate
  issuer: crypto.X509Certificate
  /** From the leaf's Authority Information Access extension. */
  responderUrl: string
}

/** A response that passed every check, with the times that decide its use. */
export interface VerifiedResponse {
  der: Buffer
  status: 'good' | 'revoked'
  thisUpdate: number
  /** ms since the epoch; undefined when the responder gave none. */
  nextUpdate: number | undefined
}

/** How far a responder's clock may run ahead of ours. */
const CLOCK_SKEW_MS = 5 * 60_000

/**
 * The OCSP part of a certificate bundle, or why it has none: the chain has no issuer (nothing
 * could check a response against it), or the leaf names no HTTP OCSP responder.
 */
export function ocspSubject (chainPem: string): OcspSubject | string {
  const blocks = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length < 2) return 'the file has no issuer certificate after the leaf (needed to check a response)'
  const leaf = new crypto.X509Certificate(blocks[0] as string)
  const issuer = new crypto.X509Certificate(blocks[1] as string)
  const responderUrl = /OCSP - URI:(\S+)/.exec(leaf.infoAccess ?? '')?.[1]
  if (responderUrl === undefined || !/^https?:\/\//.test(responderUrl)) return 'the certificate names no http(s) OCSP responder (Authority Information Access)'
  return { leaf, issuer, responderUrl }
}

/** The DER OCSP request for the leaf (SHA-1 CertID, as responders universally accept). */
export async function buildOcspRequest (subject: OcspSubject): Promise<Buffer> {
  const request = new pkijs.OCSPRequest()
  await request.createForCertificate(toPki(subject.leaf), { hashAlgorithm: 'SHA-1', issuerCertificate: toPki(subject.issuer) })
  return Buffer.from(request.toSchema(true).toBER(false))
}

/**
 * Parse and check a DER OCSPResponse for `subject`, as of `now`. Kept only when: the responder
 * said "successful"; the signature verifies with the issuer's key, or with a delegated
 * responder certificate the issuer signed for OCSP signing, valid now (RFC 6960 4.2.2.2); it speaks of this certificate; its status is good or revoked (revoked is stapled:
 * clients must hear it, and the operator is told); and thisUpdate/nextUpdate hold now.
 */
export async function verifyOcspResponse (der: Buffer, subject: OcspSubject, now: number): Promise<VerifiedResponse> {
  let basic: pkijs.BasicOCSPResponse
  try {
    const response = pkijs.OCSPResponse.fromBER(der)
    const status = response.responseStatus.valueBlock.valueDec
    if (status !== 0) throw new OcspResponseError('not_successful', `the responder answered status ${status} (not successful)`)
    if (response.responseBytes === undefined || response.responseBytes.responseType !== '1.3.6.1.5.5.7.48.1.1') {
      throw new OcspResponseError('malformed', 'not a basic OCSP response')
    }
    basic = pkijs.BasicOCSPResponse.fromBER(response.responseBytes.response.valueBlock.valueHexView)
  } catch (err) {
    if (err instanceof OcspResponseError) throw err
    throw new OcspResponseError('malformed', `unreadable OCSP response: ${(err as Error).message}`)
  }
  const leaf = toPki(subject.leaf)
  const issuer = toPki(subject.issuer)
  // A CA that signs its own responses may leave its certificate out; pkijs looks for the
  // signer among the embedded ones.
  const embedded = basic.certs ?? []
  if (!embedded.some((cert) => sameDer(cert, subject.issuer))) basic.certs = [...embedded, issuer]
  let verified = false
  try {
    // Our trust ends at the issuer (the certificate after the leaf in its bundle), not at a
    // root: pkijs would validate a signer's chain up to a root we do not have, which refused
    // every certificate issued by an intermediate CA. The responders that may sign are the
    // issuer itself and the certificates it issued for OCSP signing (RFC 6960 4.2.2.2).
    const responders = (basic.certs ?? []).filter((cert) => authorizedResponder(cert, subject.issuer, now))
    verified = await basic.verify({ trustedCerts: [issuer], trustedResponders: responders })
  } catch (err) {
    throw new OcspResponseError('unverified', `the response's signature does not verify against the issuer "${subject.issuer.subject.replace(/\n/g, ', ')}": ${(err as Error).message}`)
  }
  if (!verified) throw new OcspResponseError('unverified', 'the response\'s signature does not verify against the issuer')

  const certId = new pkijs.CertID()
  await certId.createForCertificate(leaf, { hashAlgorithm: 'SHA-1', issuerCertificate: issuer })
  const single = basic.tbsResponseData.responses.find((r) => r.certID.isEqual(certId)) ??
    await findByOtherHash(basic, leaf, issuer)
  if (single === undefined) throw new OcspResponseError('wrong_certificate', 'the response is about another certificate')
  const { status } = await basic.getCertificateStatus(leaf, issuer)
  if (status === 2) throw new OcspResponseError('unknown_status', 'the responder does not know the certificate (status unknown)')

  const thisUpdate = single.thisUpdate.getTime()
  const nextUpdate = single.nextUpdate?.getTime()
  if (thisUpdate > now + CLOCK_SKEW_MS) throw new OcspResponseError('not_yet_valid', `thisUpdate ${single.thisUpdate.toISOString()} is in the future`)
  if (nextUpdate !== undefined && nextUpdate <= now) throw new OcspResponseError('expired', `nextUpdate ${new Date(nextUpdate).toISOString()} has passed`)
  return { der, status: status === 0 ? 'good' : 'revoked', thisUpdate, nextUpdate }
}

/** Responders may hash the CertID with SHA-256; pkijs's status lookup handles any hash. */
async function findByOtherHash (basic: pkijs.BasicOCSPResponse, leaf: pkijs.Certificate, issuer: pkijs.Certificate): Promise<pkijs.SingleResponse | undefined> {
  const { isForCertificate } = await basic.getCertificateStatus(leaf, issuer)
  if (!isForCertificate) return undefined
  return basic.tbsResponseData.responses.find((r) => r.certID.serialNumber.isEqual(leaf.serialNumber))
}

/** OCSPSigning in extendedKeyUsage. */
const OCSP_SIGNING = '1.3.6.1.5.5.7.3.9'

/** The issuer itself, or a certificate it signed for OCSP signing that is valid now. */
function authorizedResponder (cert: pkijs.Certificate, issuer: crypto.X509Certificate, now: number): boolean {
  const der = derOf(cert)
  if (der.equals(issuer.raw)) return true
  let x509: crypto.X509Certificate
  try {
    x509 = new crypto.X509Certificate(der)
  } catch {
    return false
  }
  const valid = Date.parse(x509.validFrom) <= now && now <= Date.parse(x509.validTo)
  return valid && x509.checkIssued(issuer) && x509.verify(issuer.publicKey) && (x509.keyUsage ?? []).includes(OCSP_SIGNING)
}

function sameDer (cert: pkijs.Certificate, other: crypto.X509Certificate): boolean {
  return derOf(cert).equals(other.raw)
}

function derOf (cert: pkijs.Certificate): Buffer {
  return Buffer.from(cert.toSchema().toBER(false))
}

function toPki (cert: crypto.X509Certificate): pkijs.Certificate {
  return pkijs.Certificate.fromBER(cert.raw)
}
