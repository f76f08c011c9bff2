import { deriveKey, type FarmKey } from '../sync/farm-keys.js'

/** HKDF label of the secret ticket keys derive from (see src/tls/ticket-keys.ts). */
const TICKET_SECRET_LABEL = 'tlsfleet tls ticket secret'

/**
 * The secret a farm's ticket keys derive from, one per farm secret (current first). Every node
 * of the farm, whether its workers or a local HAProxy terminate TLS, and `tlsfleet
 * haproxy-keys`, computes it the same way, so they all issue and accept the same tickets.
 */
export function farmTicketSecrets (farmKeys: FarmKey[]): Buffer[] {
  return farmKeys.map((key) => deriveKey(key, TICKET_SECRET_LABEL, 32))
}
