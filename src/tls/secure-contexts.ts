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
 * What one name is served with: one certificate, or an ECDSA and an RSA (or other) one, between
 * which each client gets the ECDSA one when it can verify it (HAProxy's choice for a name with
 * both). Two certificates of one kind for a name: the first given serves it.
 */
export class CertificateChoice {
  constructor (
    /** The first certificate given for the name: what a client gets when there is no choice to make. */
    readonly first: CertificateContext,
    readonly ecdsa?: CertificateContext,
    readonly other?: CertificateContext
  ) {}

  pick (ecdsaCapable: boolean): CertificateContext {
    if (this.ecdsa === undefined || this.other === undefined) return this.first
    return ecdsaCapable ? this.ecdsa : this.other
  }

  contexts (): CertificateContext[] {
    return this.ecdsa !== undefined && this.other !== undefined ? [this.ecdsa, this.other] : [this.first]
  }
}

/**
 * Routes SNI to the certificates' contexts. Only the default certificate's are built now (the
 * first file's, with its pair), each other one when a client first names it: a new ticket-key
 * generation or a reload over hundreds of certificates never stalls one handshake to build them
 * all (400 files took 170-210 ms).
 */
export function buildSniRouter (bundles: CertificateBundle[], opts: ContextOptions): SniRouter<CertificateChoice> {
  const contexts = bundles.map((bundle) => new CertificateContext(bundle, opts))
  const index = new Map(contexts.map((context, i) => [context, i]))
  const [firstContext] = contexts
  if (firstContext === undefined) throw new Error('at least one certificate is required')
  // Per name: the first certificate of each kind, in the order given.
  const slots = new Map<string, { first: CertificateContext, ecdsa?: CertificateContext, other?: CertificateContext }>()
  for (const context of contexts) {
    const kind = context.bundle.keyType === 'ec' ? 'ecdsa' : 'other'
    for (const raw of context.bundle.names) {
      const name = raw.toLowerCase()
      const slot = slots.get(name)
      if (slot === undefined) slots.set(name, { first: context, [kind]: context })
      else slot[kind] ??= context
    }
  }
  // Names served by the same certificates share one choice.
  const choices = new Map<string, CertificateChoice>()
  const choiceOf = (slot: { first: CertificateContext, ecdsa?: CertificateContext, other?: CertificateContext }): CertificateChoice => {
    const key = [slot.first, slot.ecdsa, slot.other].map((c) => c === undefined ? -1 : index.get(c)).join(',')
    let choice = choices.get(key)
    if (choice === undefined) {
      choice = new CertificateChoice(slot.first, slot.ecdsa, slot.other)
      choices.set(key, choice)
    }
    return choice
  }
  const firstName = firstContext.bundle.names[0]?.toLowerCase()
  const firstSlot = firstName !== undefined ? slots.get(firstName) : undefined
  const fallback = firstSlot !== undefined ? choiceOf(firstSlot) : new CertificateChoice(firstContext)
  const router = new SniRouter(fallback)
  for (const [name, slot] of slots) router.add(name, choiceOf(slot))
  for (const context of fallback.contexts()) context.context()
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
