import type { TlsVersion } from '../src/lab/tls-client.js'

/**
 * Handshake profiles. `resume`: none = every connection is a full handshake; id = TLS 1.2
 * session ID (client sends no ticket, SSL_OP_NO_TICKET); ticket = TLS 1.2 or 1.3 ticket.
 * `mixed`: each connection picks TLS 1.2 (session ID) or 1.3 (ticket) at random and is a
 * returning client with probability 1 - fullShare.
 */
export interface Profile {
  name: string
  version: TlsVersion | 'mixed'
  resume: 'none' | 'id' | 'ticket' | 'mixed'
  /** mixed only: share of connections that start a new session. */
  fullShare?: number
  description: string
}

export const PROFILES: readonly Profile[] = [
  { name: 'full-1.2', version: '1.2', resume: 'none', description: 'TLS 1.2 full handshakes' },
  { name: 'full-1.3', version: '1.3', resume: 'none', description: 'TLS 1.3 full handshakes' },
  { name: 'resume-1.2-id', version: '1.2', resume: 'id', description: 'TLS 1.2 resumed by session ID' },
  { name: 'resume-1.2-ticket', version: '1.2', resume: 'ticket', description: 'TLS 1.2 resumed by ticket' },
  { name: 'resume-1.3-ticket', version: '1.3', resume: 'ticket', description: 'TLS 1.3 resumed by ticket (PSK)' },
  { name: 'mixed', version: 'mixed', resume: 'mixed', fullShare: 0.2, description: '20% new clients, 80% returning; half TLS 1.2 (ID), half TLS 1.3 (ticket)' }
]

export function findProfiles (names: string[]): Profile[] {
  return names.map((name) => {
    const found = PROFILES.find((p) => p.name === name)
    if (found === undefined) throw new Error(`unknown profile "${name}" (known: ${PROFILES.map((p) => p.name).join(', ')})`)
    return found
  })
}
