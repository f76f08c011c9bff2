import { LRUCache } from 'lru-cache'
import crypto from 'node:crypto'
import tls from 'node:tls'
import { CertificateError } from '../errors.js'
import type { CertificateBundle } from './certificates.js'
import type { ClientAuthFiles } from './client-auth.js'
import { CertificateChoice } from './certificate-choice.js'
import { signingKeys, signsInEveryVersion, unsignableProblem, type SigningKeys } from './signing-keys.js'
import type { Bind, ServedEntry } from './line-binds.js'
import { SniRouter } from './sni-router.js'
import { policyContextOptions, type TlsPolicy } from './tls-policy.js'

export interface ContextOptions {
  /**
   * The effective one (client-auth.ts sessionIdContextFor): every context's when
   * `perCertificate` is off, else the base each certificate choice's own is derived from.
   */
  sessionIdContext: string
  /** No --session-id-context given: each certificate choice gets its own (choiceSessionIdContext). */
  perCertificate?: boolean
  sessionTimeoutSeconds: number
  /** Farm ticket keys (48 bytes); absent = stateless tickets off, the session ID resumes. */
  ticketKeys?: Buffer
  policy: TlsPolicy
  /** CA certificates client certificates are verified against, and CRLs. */
  clientAuth: ClientAuthFiles
}

/**
 * The SecureContext of one certificate, or of several of different key types (OpenSSL then
 * picks per client), under one set of options (one ticket-key generation), built at its first
 * use and kept. Every context carries an explicit session-ID context, its certificate choice's:
 * OpenSSL refuses to resume a session whose context differs, and Node's default is derived
 * from the process command line.
 */
export class CertificateContext {
  private built?: tls.SecureContext
  private refused?: Error
  private fresh?: CertificateContext

  constructor (readonly bundles: readonly CertificateBundle[], private readonly opts: ContextOptions) {}

  /** The ready context; the first call builds it (0.3-0.7 ms of OpenSSL work per certificate). OpenSSL's refusal is thrown, the same one each time. */
  context (): tls.SecureContext {
    if (this.built !== undefined) return this.built
    if (this.refused !== undefined) throw this.refused
    try {
      this.built = tls.createSecureContext(contextOptions(this.bundles, this.opts))
    } catch (err) {
      this.refused = err as Error
      throw err
    }
    return this.built
  }

  get isBuilt (): boolean { return this.built !== undefined }

  /** The session-ID context it carries (its certificate choice's). */
  get sessionIdContext (): string { return this.opts.sessionIdContext }

  /**
   * The same certificates under a session-ID context no session has, so nothing resumes on it
   * (made when first asked). With one context for every certificate (--session-id-context),
   * this one: any session may resume under any name there anyway.
   */
  unresumable (): CertificateContext {
    if (this.opts.perCertificate !== true) return this
    this.fresh ??= new CertificateContext(this.bundles, { ...this.opts, sessionIdContext: crypto.randomBytes(24).toString('base64url') })
    return this.fresh
  }

  /** The files it serves, for logs. */
  get paths (): string { return this.bundles.map((b) => b.path).join(', ') }
}

/**
 * Routes SNI to the certificates' contexts. Only the default name's are built now, each other
 * one when a client first needs it: a new ticket-key generation or a reload over hundreds of
 * certificates never stalls one handshake to build them all (400 files took 170-210 ms).
 */
export function buildSniRouter (bundles: CertificateBundle[], opts: ContextOptions, served?: readonly ServedEntry[]): SniRouter<CertificateChoice> {
  const entries: ReadonlyArray<{ bundle: CertificateBundle; names: readonly string[]; excluded: readonly string[]; bind?: Bind }> = served ?? bundles.map((bundle) => ({ bundle, names: bundle.names, excluded: [] }))
  const index = new Map(bundles.map((bundle, i) => [bundle, i]))
  const [first] = entries
  if (first === undefined) throw new Error('at least one certificate is required')
  // Per name and settings: the first certificate of each key type, in the order given.
  const groups = new Map<string, Group>()
  const groupOf = (entry: typeof first, raw: string): Group => {
    const name = raw.toLowerCase()
    const key = `${name}\0${entry.bind?.id ?? 0}\0${entry.excluded.join(',')}`
    let group = groups.get(key)
    if (group === undefined) {
      group = { name, kinds: [], excluded: entry.excluded, ...(entry.bind !== undefined ? { bind: entry.bind } : {}) }
      groups.set(key, group)
    }
    if (!group.kinds.some((k) => k.keyType === entry.bundle.keyType)) group.kinds.push(entry.bundle)
    return group
  }
  for (const entry of entries) for (const name of entry.names) groupOf(entry, name)
  // Names served by the same certificates under the same settings share one choice (and one context).
  const choices = new Map<string, CertificateChoice>()
  const signings = new Map<string, SigningKeys>()
  const choiceOf = (kinds: CertificateBundle[], bind: Bind | undefined): CertificateChoice => {
    const key = `${bind?.id ?? 0}\0${kinds.map((k) => index.get(k) ?? k.path).join(',')}`
    let choice = choices.get(key)
    if (choice === undefined) {
      const own = bind === undefined ? opts : bindOptions(opts, bind)
      let signing = signings.get(own.policy.sigalgs)
      if (signing === undefined) {
        signing = signingKeys(own.policy.sigalgs)
        signings.set(own.policy.sigalgs, signing)
      }
      choice = makeChoice(kinds, own, signing, bind)
      choices.set(key, choice)
    }
    return choice
  }
  const firstName = first.names[0]
  const fallback = firstName !== undefined ? choiceOf(groupOf(first, firstName).kinds, first.bind) : choiceOf([first.bundle], first.bind)
  const router = new SniRouter(fallback)
  for (const group of groups.values()) router.add(group.name, choiceOf(group.kinds, group.bind), group.excluded)
  for (const context of fallback.contexts()) context.context()
  return router
}

interface Group { name: string; kinds: CertificateBundle[]; excluded: readonly string[]; bind?: Bind }

/** The context options of a choice served with `bind`'s settings (the ticket keys are the generation's). */
function bindOptions (opts: ContextOptions, bind: Bind): ContextOptions {
  const { ticketKeys, ...rest } = opts
  return {
    ...rest,
    policy: bind.policy,
    clientAuth: bind.clientAuth,
    sessionIdContext: bind.sessionIdContext,
    ...(bind.sessionTickets && ticketKeys !== undefined ? { ticketKeys } : {})
  }
}

/**
 * Every context of a choice (the name's certificates together, and each alone for the SNI
 * callback) carries the choice's session-ID context, so a session resumes whichever of the
 * name's certificates served it; a certificate that is in two choices gets a context in each.
 */
function makeChoice (kinds: CertificateBundle[], opts: ContextOptions, signing: SigningKeys, bind: Bind | undefined): CertificateChoice {
  const sessionIdContext = opts.perCertificate === true ? choiceSessionIdContext(opts.sessionIdContext, kinds) : opts.sessionIdContext
  const own: ContextOptions = { ...opts, sessionIdContext }
  const singles = kinds.map((bundle) => new CertificateContext([bundle], own))
  const [given] = singles as [CertificateContext, ...CertificateContext[]]
  // A client without SNI asking for a staple gets `first`, and one whose ClientHello was not
  // read `unread`, whatever its version: one --sigalgs signs them all with, when there is one.
  const everyVersion = (k: CertificateContext | undefined): boolean => k?.bundles[0] !== undefined && signsInEveryVersion(signing, k.bundles[0].keyType, k.bundles[0].curve, opts.policy)
  const first = singles.find(everyVersion) ?? given
  const ecdsa = singles.find((k) => k.bundles[0]?.keyType === 'ec')
  const rsa = singles.find((k) => k.bundles[0]?.keyType === 'rsa')
  const unread = [rsa, ecdsa].find(everyVersion) ?? rsa ?? given
  const all = singles.length === 1 ? given : new CertificateContext(kinds, own)
  const choice = new CertificateChoice(all, first, Buffer.from(sessionIdContext, 'utf8'), ecdsa, rsa, ecdsa?.bundles[0]?.curve, signing, unread)
  if (bind !== undefined) choice.bind = bind
  return choice
}

/** SHA-256 of each bundle's leaf certificate (DER), computed once per bundle a worker holds. */
const leafFingerprints = new WeakMap<CertificateBundle, string>()

function leafFingerprint (bundle: CertificateBundle): string {
  let fingerprint = leafFingerprints.get(bundle)
  if (fingerprint === undefined) {
    fingerprint = new crypto.X509Certificate(bundle.cert).fingerprint256
    leafFingerprints.set(bundle, fingerprint)
  }
  return fingerprint
}

/**
 * A certificate choice's own session-ID context (nginx's ngx_ssl_session_id_context does the
 * same per server block): the base context and the choice's leaf certificates, sorted, so
 * every node serving the same certificates computes the same one whatever their order, and a
 * session made with one certificate never resumes under a name another one serves (virtual
 * host confusion: its client never saw that certificate). 32 characters, OpenSSL's limit.
 */
export function choiceSessionIdContext (base: string, bundles: readonly CertificateBundle[]): string {
  const leaves = bundles.map(leafFingerprint).sort()
  return crypto.createHash('sha256').update(`${base}\0${leaves.join('\0')}`).digest('base64url').slice(0, 32)
}

/** One certificate, or several of different key types in one context (Node takes arrays; OpenSSL keeps one per type). */
export function contextOptions (bundles: readonly CertificateBundle[], opts: ContextOptions): tls.SecureContextOptions {
  const policy = policyContextOptions(opts.policy)
  const [only] = bundles
  return {
    ...policy,
    ...(bundles.length === 1 && only !== undefined ? { key: only.key, cert: only.cert } : { key: bundles.map((b) => b.key), cert: bundles.map((b) => b.cert) }),
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
 * small keys, e.g. RSA-1024 at intermediate), and whether --sigalgs signs with its key in some
 * version the policy allows (OpenSSL builds that context, then fails every handshake with
 * it): the primary asks before any worker does. `sigalgsOrigin`: --sigalgs as given.
 */
export function checkBundleUsable (bundle: CertificateBundle, policy: TlsPolicy, sigalgsOrigin = '--sigalgs'): void {
  const unsignable = unsignableProblem(signingKeys(policy.sigalgs), bundle.keyType, bundle.curve, policy, sigalgsOrigin)
  if (unsignable !== undefined) throw new CertificateError(bundle.path, unsignable)
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
