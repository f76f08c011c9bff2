import type crypto from 'node:crypto'
import * as pkijs from 'pkijs'

/**
 * The client certificates the --crl file revokes, for the one check OpenSSL does not make:
 * it verifies a client certificate (and reads the CRLs) in a full handshake only, while a
 * resumed session carries the certificate it was made with, revoked since or not. The worker
 * asks here for each resumed session that names a certificate, so a SIGHUP with a new CRL ends
 * those sessions at their next resumption, not at their expiry.
 *
 * Looked up by serial number first (a Map lookup, all a resumption normally costs); the issuer
 * is compared only when a serial matches, since serials are unique per CA only.
 */
export class RevokedCertificates {
  /** Serial (hex, uppercase, no leading zeros) to the issuers whose CRL lists it. */
  private readonly bySerial = new Map<string, pkijs.RelativeDistinguishedNames[]>()

  /** From the PEM blocks of --crl as the primary read and checked them (client-auth.ts). */
  constructor (crlPemBlocks: readonly string[]) {
    for (const block of crlPemBlocks) {
      const crl = pkijs.CertificateRevocationList.fromBER(pemBody(block))
      for (const revoked of crl.revokedCertificates ?? []) {
        const serial = normalSerial(Buffer.from(revoked.userCertificate.valueBlock.valueHexView).toString('hex'))
        const issuers = this.bySerial.get(serial)
        if (issuers === undefined) this.bySerial.set(serial, [crl.issuer])
        else issuers.push(crl.issuer)
      }
    }
  }

  get size (): number { return this.bySerial.size }

  /** Whether a CRL of the certificate's issuer lists it. */
  has (certificate: crypto.X509Certificate): boolean {
    const issuers = this.bySerial.get(normalSerial(certificate.serialNumber))
    if (issuers === undefined) return false
    const issuer = pkijs.Certificate.fromBER(certificate.raw).issuer
    return issuers.some((name) => name.isEqual(issuer))
  }
}

/** The DER inside one PEM block. */
export function pemBody (block: string): Buffer {
  return Buffer.from(block.replace(/-----(BEGIN|END) [^-]+-----/g, '').replace(/\s+/g, ''), 'base64')
}

/** One spelling for a serial: Node prints it in uppercase hex, DER may lead with a zero byte. */
function normalSerial (hex: string): string {
  return hex.toUpperCase().replace(/^0+(?=.)/, '')
}
