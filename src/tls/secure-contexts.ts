import crypto from 'node:crypto'
import tls from 'node:tls'
import type { CertificateBundle } from './certificates.js'
import { SniRouter } from './sni-router.js'

export interface ContextOptions {
  sessionIdContext: string
  sessionTimeoutSeconds: number
  /** Farm ticket keys (48 bytes); absent = stateless tickets off, the session ID resumes. */
  ticketKeys?: Buffer
}

/**
 * Turns certificate bundles into ready SecureContexts, once per (re)load, and routes SNI to
 * them. Every context carries the same explicit session-ID context: OpenSSL refuses to resume
 * a session whose context differs, and Node's default is derived from the process command line.
 */
export function buildSniRouter (bundles: CertificateBundle[], opts: ContextOptions): SniRouter<tls.SecureContext> {
  if (bundles.length === 0) throw new Error('at least one certificate is required')
  const contexts = bundles.map((bundle) => tls.createSecureContext(contextOptions(bundle, opts)))
  const router = new SniRouter(contexts[0] as tls.SecureContext)
  bundles.forEach((bundle, i) => {
    for (const name of bundle.names) router.add(name, contexts[i] as tls.SecureContext)
  })
  return router
}

export function contextOptions (bundle: CertificateBundle, opts: ContextOptions): tls.SecureContextOptions {
  return {
    key: bundle.key,
    cert: bundle.cert,
    sessionIdContext: opts.sessionIdContext,
    sessionTimeout: opts.sessionTimeoutSeconds,
    ...(opts.ticketKeys !== undefined
      ? { ticketKeys: opts.ticketKeys }
      : { secureOptions: crypto.constants.SSL_OP_NO_TICKET })
  }
}
