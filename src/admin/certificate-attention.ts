/**
 * When a served certificate needs the operator. Decided once, in the certificate view GET
 * /v1/certificates returns (its `attention`): `tlsfleet status`, the dashboard's row marking and
 * the dashboard's choice of rows all read it, so they cannot drift apart.
 */
import type { StapleState } from '../ocsp/ocsp-stapler.js'

/** A certificate this close to its end needs the operator (Let's Encrypt renews at 30 days left). */
export const EXPIRY_WARNING_DAYS = 14

/** The reasons, as the API names them: past its end, within EXPIRY_WARNING_DAYS of it, revoked, nothing stapled. */
export const CERTIFICATE_ATTENTION = ['expired', 'expiring', 'revoked', 'unstapled'] as const
export type CertificateAttention = typeof CERTIFICATE_ATTENTION[number]

/**
 * Why a certificate needs the operator, in CERTIFICATE_ATTENTION's order; empty when it does
 * not. A list, not one reason: an expiring certificate may be unstapled too, and status says both.
 * `ocsp` is absent without --ocsp-dir: no staple is then expected.
 */
export function certificateAttention (expiresInDays: number, ocsp: StapleState | undefined): CertificateAttention[] {
  const reasons: CertificateAttention[] = []
  if (expiresInDays < 0) reasons.push('expired')
  else if (expiresInDays < EXPIRY_WARNING_DAYS) reasons.push('expiring')
  if (ocsp?.status === 'revoked') reasons.push('revoked')
  else if (ocsp?.status === 'none') reasons.push('unstapled')
  return reasons
}

/** A staple problem (revoked, nothing stapled), as opposed to an expiry one. */
export function stapleAttention (reasons: readonly CertificateAttention[]): boolean {
  return reasons.includes('revoked') || reasons.includes('unstapled')
}
