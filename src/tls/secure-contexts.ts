import { LRUCache } from 'lru-cache'
import crypto from 'node:crypto'
import tls from 'node:tls'
import { CertificateError } from '../errors.js'
import type { CertificateBundle } from './certificates.js'
import type { ClientAuthFiles } from './client-auth.js'
import { SniRouter } from './sni-router.js'
import { policyContextOptions, type TlsPolicy } from './tls-policy.js'

export interface ContextOptions {
  /** The effective one (client-auth.ts sessionIdContextFor). */
  sessionIdContext: string
  sessionTimeoutSeconds: number
  /** Farm ticket keys (48 bytes); absent = stateless tickets off, the session ID resumes. */
  ticketKeys?: Buffer
  policy: TlsPolicy
  /** CA certificates client certificates are verified against, and CRLs. */
  clientAuth: ClientAuthFiles
}

/**
 * One certificate's SecureContext under one set of options (one ticket-key generation), built
 * at its first use and kept. Every context carries the same explicit session-ID context:
 * OpenSSL refuses to resume a session whose context differs, and Node's default is derived
 * from the process command line.
 */
export class CertificateContext {
  private built?: tls.SecureContext
  private refused?: Error

  constructor (readonly bundle: CertificateBundle, private readonly opts: ContextOptions) {}

  /** The ready context; the first call builds it (0.3-0.7 ms of OpenSSL work). OpenSSL's refusal is thrown, the same one each time. */
  context (): tls.SecureContext {
    if (this.built !== undefined) return this.built
    if (this.refused !== undefined) throw this.refused
    try {
      this.built = tls.createSecureContext(contextOptions(this.bundle, this.opts))
    } catch (err) {
      this.refused = err as Error
      throw err
    }
    return this.built
  }

  get isBuilt (): boolean { return this.built !== undefined }
}

/**
 * Routes SNI to the certificates' contexts. Only the default certificate's is built now, each
 * other one when a client first names it: a new ticket-key generation or a reload over hundreds
 * of certificates never stalls one handshake to build them all (400 files took 170-210 ms).
 */
export function buildSniRouter (bundles: CertificateBundle[], opts: ContextOptions): SniRouter<CertificateContext> {
  const contexts = bundles.map((bundle) => new CertificateContext(bundle, opts))
  const [fallback] = contexts
  if (fallback === undefined) throw new Error('at least one certificate is required')
  const router = new SniRouter(fallback)
  contexts.forEach((context) => {
    for (const name of context.bundle.names) router.add(name, context)
  })
  fallback.context()
  return router
}

export function contextOptions (bundle: CertificateBundle, opts: ContextOptions): tls.SecureContextOptions {
  const policy = policyContextOptions(opts.policy)
  return {
    ...policy,
    key: bundle.key,
    cert: bundle.cert,
    sessionIdContext: opts.sessionIdContext,
    sessionTimeout: opts.sessionTimeoutSeconds,
    ...(opts.clientAuth.ca !== undefined ? { ca: opts.clientAuth.ca } : {}),
    ...(opts.clientAuth.crl !== undefined ? { crl: opts.clientAuth.crl } : {}),
    ...(opts.ticketKeys !== undefined ? { ticketKeys: opts.ticketKeys } : {}),
    secureOptions: policy.secureOptions | (opts.ticketKeys === undefined ? crypto.constants.SSL_OP_NO_TICKET : 0)
  }
}

/**
 * Whether OpenSSL builds a context of `bundle` under `policy` (its security level refuses
 * small keys, e.g. RSA-1024 at intermediate): the primary asks before any worker does.
 */
export function checkBundleUsable (bundle: CertificateBundle, policy: TlsPolicy): void {
  try {
    tls.createSecureContext({ ...policyContextOptions(policy), key: bundle.key, cert: bundle.cert })
  } catch (err) {
    throw new CertificateError(bundle.path, `OpenSSL refuses it under the TLS policy (--tls-profile ${policy.profile}): ${(err as Error).message}`)
  }
}

/**
 * A bundle check (checkBundleUsable) that remembers the key and certificate pairs it passed:
 * a throwaway context costs 0.3-0.7 ms of the primary's CPU, so a SIGHUP over hundreds of
 * unchanged files would hold the agent and L2 for a few hundred ms. Only new or changed pairs
 * are checked again; a refused pair is checked every time.
 */
export function rememberingCheck (check: (bundle: CertificateBundle) => void, remember = 10_000): (bundle: CertificateBundle) => void {
  const passed = new LRUCache<string, true>({ max: remember })
  return (bundle) => {
    const pair = crypto.createHash('sha256').update(bundle.key).update('\0').update(bundle.cert).digest('base64')
    if (passed.has(pair)) return
    check(bundle)
    passed.set(pair, true)
  }
}
