import crypto from 'node:crypto'
import type tls from 'node:tls'
import type { CertificateBundle } from '../tls/certificates.js'

/** A verified OCSP response for one certificate, as the primary sends it to the workers. */
export interface Staple {
  /** certificateKey() of the leaf it is for. */
  certificate: string
  der: Buffer
  /** ms since the epoch after which it must not be stapled (its nextUpdate). */
  expiresAt: number
}

/** How staples are matched to the certificate OpenSSL is about to send: a hash of its DER. */
export function certificateKey (der: Buffer | Uint8Array): string {
  return crypto.createHash('sha256').update(der).digest('hex')
}

/**
 * The worker's staples. Node asks for one through the server's 'OCSPRequest' event, only for
 * clients that asked for certificate status, with the certificate of the context in use; the
 * answer is a Map lookup and never waits for anything (a certificate without a fresh response
 * gets none). An expired response is never stapled, even if a refresh is late.
 */
export class StapleStore {
  private staples = new Map<string, Staple>()

  /** `hubs`: the terminator's tls.Servers that receive the handshake events (see terminator.ts). */
  constructor (private readonly hubs: tls.Server[]) {
    for (const hub of hubs) {
      hub.on('OCSPRequest', (certificate: Buffer | null, _issuer: Buffer | null, done: (err: Error | null, response?: Buffer) => void) => {
        done(null, certificate === null ? undefined : this.find(certificate))
      })
    }
  }

  set (staples: Staple[]): void {
    this.staples = new Map(staples.map((s) => [s.certificate, s]))
  }

  /**
   * Node asks the hub's own context for the certificate when the client sent no SNI (no SNI
   * callback ran), and that client gets the default certificate: give the hub that one.
   */
  useDefaultCertificate (bundle: CertificateBundle | undefined): void {
    if (bundle !== undefined) for (const hub of this.hubs) hub.setSecureContext({ key: bundle.key, cert: bundle.cert })
  }

  find (certificate: Buffer): Buffer | undefined {
    const staple = this.staples.get(certificateKey(certificate))
    return staple !== undefined && Date.now() < staple.expiresAt ? staple.der : undefined
  }
}
