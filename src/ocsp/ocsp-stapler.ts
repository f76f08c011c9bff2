import fs from 'node:fs'
import { Counter, Gauge, type Registry } from 'prom-client'
import { request } from 'undici'
import type { CertificateBundle } from '../tls/certificates.js'
import type { Logger } from '../util/logger.js'
import { writeFileAtomically } from '../util/safe-files.js'
import { buildOcspRequest, ocspSubject, OcspResponseError, verifyOcspResponse, type OcspSubject, type VerifiedResponse } from './ocsp-response.js'
import { certificateKey, type Staple } from './staple-store.js'
import { removeStaleResponses, removeStaleTempFiles, responseFile } from './stale-responses.js'

export interface OcspStaplerOptions {
  /** --ocsp-dir: verified responses are kept here, one file per certificate. */
  dir: string
  /** --ocsp-refresh-interval, in ms: the longest wait between two fetches. */
  refreshIntervalMs: number
  /** A refresh changed the staples: send them to the workers (setCertificates returns its own). */
  onChange: (staples: Staple[]) => void
  registry: Registry
  log: Logger
  /** Connect + answer deadline for one responder request. */
  fetchTimeoutMs?: number
  /** How long a reload waits for the first responses of certificates new to the stapler. */
  firstFetchWaitMs?: number
}

/** First retry after a failed fetch; doubled each time, up to the refresh interval. */
const RETRY_BASE_MS = 10_000
/** A reload waits this long at most for new certificates' first responses (then goes on without). */
const FIRST_FETCH_WAIT_MS = 3000
/** Responses are small (a few KiB); anything bigger is not one. */
const MAX_RESPONSE_BYTES = 64 * 1024

interface Target {
  key: string
  label: string
  subject: OcspSubject
  file: string
  current?: VerifiedResponse
  failures: number
  timer?: NodeJS.Timeout
  fetching: boolean
  /** Why the last fetch failed, until one succeeds (shown by GET /v1/certificates). */
  lastError?: string
}

/** What stapling does for one certificate file now (GET /v1/certificates, `tlsfleet status`). */
export interface StapleState {
  /** `none`: nothing is stapled for it (`reason` says why). */
  status: 'good' | 'revoked' | 'none'
  thisUpdate?: string
  nextUpdate?: string
  reason?: string
}

/**
 * When to fetch again: when half of the response's validity has passed (Let's Encrypt's and
 * most responders' advice), or after the refresh interval if that comes first or the response
 * has no nextUpdate. A response already past that point is refreshed at once.
 */
export function refreshDelay (response: Pick<VerifiedResponse, 'thisUpdate' | 'nextUpdate'> | undefined, now: number, refreshIntervalMs: number): number {
  if (response === undefined) return 0
  const halfLife = response.nextUpdate !== undefined ? (response.nextUpdate - response.thisUpdate) / 2 : Infinity
  return Math.max(0, response.thisUpdate + Math.min(halfLife, refreshIntervalMs) - now)
}

/** Share of a planned wait that may be cut (at random) so that the certificates' fetches spread out. */
export const STAGGER = 0.1

/**
 * A planned wait, shortened by up to STAGGER at random: certificates loaded or refreshed
 * together (one responder's responses share their thisUpdate) would otherwise all be fetched
 * at the same moment, and all retried at the same moments while a responder is down. Only ever
 * earlier, so a refresh never moves past the point `refreshDelay` chose; 0 stays 0.
 */
export function staggered (delayMs: number, random: () => number = Math.random): number {
  return Math.round(delayMs * (1 - STAGGER * random()))
}

/** After `failures` failed fetches in a row. */
export function retryDelay (failures: number, refreshIntervalMs: number): number {
  return Math.min(refreshIntervalMs, RETRY_BASE_MS * 2 ** Math.max(0, failures - 1))
}

/**
 * OCSP stapling, the primary's side: for every certificate whose leaf names an OCSP responder
 * (and whose chain holds its issuer), fetch the response with undici, verify it against the
 * issuer, keep it in --ocsp-dir (so a restart staples at once, even while the responder is
 * down), hand it to the workers, and fetch again before it expires. Nothing here is on a
 * handshake's path: a responder that is slow or down only means no staple.
 */
export class OcspStapler {
  private readonly targets = new Map<string, Target>()
  /** Certificate files without OCSP (no responder named, no issuer), and why: logged once each. */
  private readonly unstapled = new Map<string, string>()
  /** Each followed certificate file's target key (two files with one leaf share a target). */
  private paths = new Map<string, string>()
  private readonly failuresTotal: Counter<'reason'>
  private running = false
  /** The certificate changes asked so far, applied one after the other (setCertificates). */
  private settling: Promise<void> = Promise.resolve()

  constructor (private readonly opts: OcspStaplerOptions) {
    const targets = this.targets
    const usable = this.usable.bind(this)
    new Gauge({
      name: 'tlsfleet_ocsp_staple_age_seconds',
      help: 'Age (now - thisUpdate) of the OCSP response stapled for each certificate that has one',
      labelNames: ['certificate'] as const,
      registers: [opts.registry],
      collect () {
        this.reset()
        const now = Date.now()
        for (const target of targets.values()) {
          if (usable(target.current, now)) this.set({ certificate: target.label }, (now - target.current.thisUpdate) / 1000)
        }
      }
    })
    this.failuresTotal = new Counter({
      name: 'tlsfleet_ocsp_refresh_failures_total',
      help: 'OCSP responses that could not be fetched or were refused, by reason',
      labelNames: ['reason'] as const,
      registers: [opts.registry]
    })
  }

  /** The certificate files stapling follows now (those that name a responder), in no order. */
  followed (): string[] {
    return [...this.targets.values()].map((target) => target.label)
  }

  /** The certificate files followed that have no usable response now (nothing to staple). */
  withoutStaple (): string[] {
    const now = Date.now()
    return [...this.targets.values()].filter((target) => this.targetState(target, now).status === 'none').map((target) => target.label)
  }

  /** What is stapled for the certificate file `file` now, or why nothing is. */
  stapleState (file: string): StapleState {
    const target = this.targets.get(this.paths.get(file) ?? '')
    if (target === undefined) return { status: 'none', reason: this.unstapled.get(file) ?? 'not followed' }
    return this.targetState(target, Date.now())
  }

  /**
   * One followed certificate's staple state; withoutStaple lists the targets this says `none`
   * of (by target, not by file: a target outlives its label's file when another file shares the leaf).
   */
  private targetState (target: Target, now: number): StapleState {
    const current = target.current
    if (this.usable(current, now)) {
      return {
        status: current.status === 'revoked' ? 'revoked' : 'good',
        thisUpdate: new Date(current.thisUpdate).toISOString(),
        ...(current.nextUpdate !== undefined ? { nextUpdate: new Date(current.nextUpdate).toISOString() } : {})
      }
    }
    const reason = target.lastError !== undefined ? `last fetch failed: ${target.lastError}` : current !== undefined ? 'the response expired' : 'no response fetched yet'
    return { status: 'none', reason }
  }

  /** Valid staples now, for a new worker's init. */
  staples (): Staple[] {
    const now = Date.now()
    const staples: Staple[] = []
    for (const target of this.targets.values()) {
      const current = target.current
      if (current === undefined || !this.usable(current, now)) continue
      staples.push({ certificate: target.key, der: current.der, expiresAt: this.expiresAt(current) })
    }
    return staples
  }

  /**
   * Follow the node's certificates (at start and on every reload) and return their staples, for
   * the caller to send with the certificates themselves. New ones get the response kept on disk,
   * if still valid; once fetching has started (a reload), a new one without it is fetched now,
   * waiting FIRST_FETCH_WAIT_MS at most: a worker given a replaced certificate before its staple
   * served it unstapled until the fetch, which fails every handshake of a must-staple
   * certificate. Certificates gone are forgotten.
   */
  async setCertificates (bundles: CertificateBundle[]): Promise<Staple[]> {
    // One at a time, in the order asked: two reloads interleaved at their awaits each removed
    // the entries the other had added (a replaced certificate went unstapled until the next).
    const run = this.settling.then(async () => await this.follow(bundles))
    this.settling = run.then(() => {}, () => {})
    return await run
  }

  private async follow (bundles: CertificateBundle[]): Promise<Staple[]> {
    const added: Target[] = []
    const paths = new Map<string, string>()
    const seen = new Set<string>()
    for (const bundle of bundles) {
      let subject: OcspSubject | string
      try {
        subject = ocspSubject(bundle.cert)
      } catch (err) {
        this.opts.log.warn({ err, certificate: bundle.path }, 'OCSP: cannot read the certificate chain; no stapling for it')
        continue
      }
      if (typeof subject === 'string') {
        // Said once per certificate file: a client asking for a staple gets none for it.
        if (!this.unstapled.has(bundle.path)) this.opts.log.info({ certificate: bundle.path, reason: subject }, 'OCSP: no stapling for this certificate')
        this.unstapled.set(bundle.path, subject)
        continue
      }
      const key = certificateKey(subject.leaf.raw)
      seen.add(key)
      paths.set(bundle.path, key)
      if (this.targets.has(key)) continue
      const target: Target = { key, label: bundle.path, subject, file: responseFile(this.opts.dir, key), failures: 0, fetching: false }
      this.targets.set(key, target)
      await this.loadKept(target)
      added.push(target)
    }
    if (this.running) await this.fetchFirst(added)
    for (const [key, target] of this.targets) {
      if (!seen.has(key)) {
        clearTimeout(target.timer)
        this.targets.delete(key)
      }
    }
    this.paths = paths
    this.removeStale()
    return this.staples()
  }

  /**
   * Responses kept for certificates no longer served (renewed, removed) are deleted once
   * idle for two refresh intervals: at every certificate change and after every write, so
   * the directory holds about one file per certificate served, not one per renewal ever.
   * Temporary files of writes a dead node left (removeStaleTempFiles) go with them.
   */
  private removeStale (): void {
    const removed = removeStaleResponses(this.opts.dir, new Set(this.targets.keys()), 2 * this.opts.refreshIntervalMs)
    if (removed.length > 0) this.opts.log.info({ dir: this.opts.dir, files: removed }, 'OCSP: removed responses kept for certificates no longer served')
    const temps = removeStaleTempFiles(this.opts.dir)
    if (temps.length > 0) this.opts.log.info({ dir: this.opts.dir, files: temps }, 'OCSP: removed temporary files of response writes that never finished (a node stopped mid-write)')
  }

  /**
   * New targets: those without a usable kept response are fetched now (each fetch plans its
   * next itself, on success or failure), the others planned. Waits FIRST_FETCH_WAIT_MS at most;
   * a fetch still running then carries on and sends its staple when it has it.
   */
  private async fetchFirst (added: Target[]): Promise<void> {
    const now = Date.now()
    const fetches: Array<Promise<void>> = []
    for (const target of added) {
      if (this.usable(target.current, now)) this.schedule(target, this.nextRefreshIn(target.current, now))
      else fetches.push(this.refresh(target))
    }
    if (fetches.length === 0) return
    let timer: NodeJS.Timeout | undefined
    const waited = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.opts.firstFetchWaitMs ?? FIRST_FETCH_WAIT_MS) })
    await Promise.race([Promise.all(fetches), waited])
    clearTimeout(timer)
  }

  /** Begin fetching (after the node switched to --user, so files it writes are that user's). */
  start (): void {
    this.running = true
    const now = Date.now()
    for (const target of this.targets.values()) this.schedule(target, this.nextRefreshIn(target.current, now))
  }

  stop (): void {
    this.running = false
    for (const target of this.targets.values()) clearTimeout(target.timer)
  }

  /** A response without nextUpdate is used until the next refresh is due. */
  private expiresAt (response: VerifiedResponse): number {
    return response.nextUpdate ?? response.thisUpdate + this.opts.refreshIntervalMs
  }

  private usable (response: VerifiedResponse | undefined, now: number): response is VerifiedResponse {
    return response !== undefined && now < this.expiresAt(response)
  }

  /** The wait before the next refresh of a target holding `response`, staggered. */
  private nextRefreshIn (response: VerifiedResponse | undefined, now: number): number {
    return staggered(refreshDelay(response, now, this.opts.refreshIntervalMs))
  }

  private schedule (target: Target, delayMs: number): void {
    clearTimeout(target.timer)
    // setTimeout holds at most ~24.8 days; a later refresh is re-planned when that fires.
    target.timer = setTimeout(() => { void this.refresh(target) }, Math.min(delayMs, 2 ** 31 - 1))
    target.timer.unref()
  }

  private async refresh (target: Target): Promise<void> {
    if (!this.running || target.fetching || this.targets.get(target.key) !== target) return
    target.fetching = true
    try {
      const der = await this.fetch(target.subject)
      const response = await verifyOcspResponse(der, target.subject, Date.now())
      await this.keep(target, response).catch((err: unknown) => this.opts.log.error({ err, file: target.file }, 'OCSP: cannot write the response into --ocsp-dir; stapling it anyway'))
      // Forgotten meanwhile (a reload removed the certificate): nothing to report or staple.
      if (this.targets.get(target.key) !== target) return
      target.failures = 0
      target.lastError = undefined
      target.current = response
      this.report(target, response)
      this.opts.onChange(this.staples())
      this.schedule(target, Math.max(1000, this.nextRefreshIn(response, Date.now())))
    } catch (err) {
      const reason = err instanceof OcspResponseError ? err.reason : 'unreachable'
      this.failuresTotal.inc({ reason })
      target.failures++
      target.lastError = (err as Error).message
      const retryMs = staggered(retryDelay(target.failures, this.opts.refreshIntervalMs))
      // An expected failure (responder down, a bad answer) is its message, not a stack at every retry.
      const why = err instanceof OcspResponseError ? { error: err.message } : { err }
      this.opts.log.warn({ ...why, certificate: target.label, responder: target.subject.responderUrl, reason, retryInMs: retryMs, stapling: this.usable(target.current, Date.now()) ? 'the previous response' : 'none' }, 'OCSP refresh failed')
      this.schedule(target, retryMs)
    } finally {
      target.fetching = false
    }
  }

  private report (target: Target, response: VerifiedResponse): void {
    const fields = { certificate: target.label, status: response.status, thisUpdate: new Date(response.thisUpdate).toISOString(), nextUpdate: response.nextUpdate !== undefined ? new Date(response.nextUpdate).toISOString() : null }
    if (response.status === 'revoked') this.opts.log.error(fields, 'OCSP: the certificate is REVOKED according to its responder (the signed answer is stapled; replace the certificate)')
    else this.opts.log.info(fields, 'OCSP response fetched')
  }

  private async fetch (subject: OcspSubject): Promise<Buffer> {
    const body = await buildOcspRequest(subject)
    let response
    try {
      response = await request(subject.responderUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
        body,
        signal: AbortSignal.timeout(this.opts.fetchTimeoutMs ?? 10_000)
      })
    } catch (err) {
      throw new OcspResponseError('unreachable', `${subject.responderUrl}: ${(err as Error).message}`)
    }
    if (response.statusCode !== 200) {
      await response.body.dump()
      throw new OcspResponseError('http_status', `${subject.responderUrl} answered HTTP ${response.statusCode}`)
    }
    const chunks: Buffer[] = []
    let size = 0
    try {
      for await (const chunk of response.body) {
        size += (chunk as Buffer).length
        if (size > MAX_RESPONSE_BYTES) {
          response.body.destroy()
          throw new OcspResponseError('too_large', `${subject.responderUrl} sent more than ${MAX_RESPONSE_BYTES} bytes`)
        }
        chunks.push(chunk as Buffer)
      }
    } catch (err) {
      if (err instanceof OcspResponseError) throw err
      throw new OcspResponseError('unreachable', `${subject.responderUrl}: ${(err as Error).message}`)
    }
    return Buffer.concat(chunks)
  }

  /** The response kept on disk, when it still verifies and has not expired. */
  private async loadKept (target: Target): Promise<void> {
    let der: Buffer
    try {
      der = await fs.promises.readFile(target.file)
    } catch {
      return
    }
    try {
      target.current = await verifyOcspResponse(der, target.subject, Date.now())
      this.opts.log.info({ certificate: target.label, file: target.file, status: target.current.status }, 'OCSP response loaded from --ocsp-dir')
    } catch (err) {
      this.opts.log.info({ err, certificate: target.label, file: target.file }, 'OCSP response kept in --ocsp-dir is no longer usable; fetching a new one')
    }
  }

  /**
   * Whole or not at all, so a crash or a reader never sees half a file; under a random name
   * created with O_EXCL, so a link planted at a predictable one cannot redirect the write.
   */
  private async keep (target: Target, response: VerifiedResponse): Promise<void> {
    writeFileAtomically(target.file, response.der, { mode: 0o644 })
    this.removeStale()
  }
}

