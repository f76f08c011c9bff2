import {
  SIGNATURES_ECDSA, SIGNATURES_ECDSA_P256, SIGNATURES_ECDSA_P384, SIGNATURES_ECDSA_P521, SIGNATURES_ECDSA_SUITE,
  SIGNATURES_GROUP_P256, SIGNATURES_GROUP_P384, SIGNATURES_GROUP_P521, SIGNATURES_GROUPS_SENT, SIGNATURES_SENT
} from './client-hello.js'
import type { Bind } from './line-binds.js'
import type { CertificateContext } from './secure-contexts.js'
import { ANY_SIGNING_KEYS, signsWith, type SigningKeys } from './signing-keys.js'

/**
 * What one name is served with. `all` holds the first certificate of each key type given for
 * the name (ECDSA, RSA, Ed25519, ...) in one context; as a socket's own context, OpenSSL serves
 * each client one it can use, by its cipher suites, signature schemes and groups. A second
 * certificate of a type for the name is not used.
 *
 * Two cases need one certificate per context: a context handed over through OpenSSL's SNI
 * callback (Node then installs only one certificate of it, the last one set), and OCSP stapling
 * (Node asks for the staple of one certificate per context, before OpenSSL picks). `first` is
 * the first certificate given for the name that --sigalgs signs every allowed TLS version with
 * (else the first given); `single` chooses ECDSA or RSA from the ClientHello and --sigalgs.
 */
export class CertificateChoice {
  /** The settings it is served with (line-binds.ts); set by the router builder, absent in unit tests built by hand. */
  bind?: Bind

  constructor (
    readonly all: CertificateContext,
    readonly first: CertificateContext,
    /**
     * The session-ID context every context of this choice carries (as OpenSSL stores it): a
     * session made under another one is another certificate's, or another node setup's.
     */
    readonly sessionIdContext: Buffer,
    /** The name's first ECDSA and first RSA certificates, each alone in a context, when it has them. */
    readonly ecdsa?: CertificateContext,
    readonly rsa?: CertificateContext,
    /** The ECDSA key's named curve. */
    readonly curve?: string,
    /** What --sigalgs lets the node sign with (signing-keys.ts). */
    readonly signing: SigningKeys = ANY_SIGNING_KEYS,
    /**
     * For a ClientHello not read (its version unknown): the RSA one, else the ECDSA one, that
     * --sigalgs signs every allowed version with; without one, the RSA one, else the first.
     */
    readonly unread: CertificateContext = rsa ?? first
  ) {}

  /**
   * One certificate alone: the ECDSA one when the client can verify it and --sigalgs holds a
   * scheme both sides have, else the RSA one when --sigalgs signs the version with RSA (every
   * client can use RSA; an Ed25519 one only when it is all the name has), else the ECDSA one
   * when the node can sign with it, else the first. A certificate the node cannot sign with
   * fails every handshake (OpenSSL has no other one in a context made for the SNI callback).
   * `signatures` undefined: the ClientHello could not be read (`unread`).
   */
  single (signatures: number | undefined, tls13: boolean): CertificateContext {
    if (signatures === undefined) return this.unread
    const ecdsa = this.ecdsa !== undefined && signsWith(this.signing, 'ec', this.curve, tls13) ? this.ecdsa : undefined
    if (ecdsa !== undefined && ecdsaVerifiable(signatures, this.curve, tls13, this.signing.ecdsaSchemes)) return ecdsa
    const rsa = this.rsa !== undefined && signsWith(this.signing, 'rsa', undefined, tls13) ? this.rsa : undefined
    return rsa ?? ecdsa ?? this.rsa ?? this.first
  }

  /** Every context a client may get (built at a worker's start). */
  contexts (): CertificateContext[] {
    return [...new Set([this.all, this.first, ...(this.ecdsa !== undefined ? [this.ecdsa] : []), ...(this.rsa !== undefined ? [this.rsa] : [])])]
  }
}

const CURVE_BITS: Readonly<Record<string, { scheme: number; group: number }>> = {
  prime256v1: { scheme: SIGNATURES_ECDSA_P256, group: SIGNATURES_GROUP_P256 },
  secp384r1: { scheme: SIGNATURES_ECDSA_P384, group: SIGNATURES_GROUP_P384 },
  secp521r1: { scheme: SIGNATURES_ECDSA_P521, group: SIGNATURES_GROUP_P521 }
}

/**
 * Whether a handshake with an ECDSA certificate on `curve` can succeed, from what the ClientHello
 * says (client-hello.ts SIGNATURES_*). TLS 1.3: a scheme naming that curve. TLS 1.2 and older:
 * an ECDSA scheme (or no signature_algorithms at all, RFC 5246 7.4.1.4.1), an ECDSA cipher
 * suite, and the curve among supported_groups when it is sent. Whether the server's own cipher
 * list allows an ECDSA suite is not known here: an RSA-only --ciphers with an ECDSA certificate
 * fails the TLS 1.2 clients this choice is made for. `ours`: the SIGNATURES_ECDSA_P* bits of
 * the ECDSA schemes --sigalgs lists (all without it): a scheme must be on both sides.
 */
export function ecdsaVerifiable (signatures: number, curve: string | undefined, tls13: boolean, ours = SIGNATURES_ECDSA_P256 | SIGNATURES_ECDSA_P384 | SIGNATURES_ECDSA_P521): boolean {
  const bits = curve !== undefined ? CURVE_BITS[curve] : undefined
  if (bits === undefined) return false
  if (tls13) return (signatures & ours & bits.scheme) !== 0
  // TLS 1.2: SHA-256/384/512 with any curve; a client that lists them names the hashes by the same bits.
  const allHashes = SIGNATURES_ECDSA_P256 | SIGNATURES_ECDSA_P384 | SIGNATURES_ECDSA_P521
  const hashOk = (ours & allHashes) === allHashes || (signatures & ours & allHashes) !== 0
  const schemeOk = (signatures & SIGNATURES_SENT) === 0 || ((signatures & SIGNATURES_ECDSA) !== 0 && hashOk)
  const groupOk = (signatures & SIGNATURES_GROUPS_SENT) === 0 || (signatures & bits.group) !== 0
  return schemeOk && groupOk && (signatures & SIGNATURES_ECDSA_SUITE) !== 0
}
