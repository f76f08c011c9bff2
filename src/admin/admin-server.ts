import type net from 'node:net'
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify'
import { EvictOldest } from '../admission/evict-oldest.js'
import type { HostPort } from '../config/host-port.js'
import { AdminRequestError } from '../errors.js'
import type { Logger } from '../util/logger.js'
import { bearerMatches } from './admin-auth.js'
import { DASHBOARD_PAGE_PATHS, registerDashboard } from './dashboard-routes.js'
import type { DashboardBody } from './dashboard-schema.js'
import { crossSiteReason, hostAllowed } from './request-guards.js'
import {
  cacheSchema, certificatesSchema, errorSchema, healthSchema, moveClientsResponseSchema, peersSchema, putStateBodySchema,
  putStateResponseSchema, stateSchema,
  type CacheBody, type CertificatesBody, type ErrorBody, type HaproxyResult, type HealthBody, type PeersBody, type PutStateBody,
  type PutStateResponse, type StateBody
} from './schemas.js'

/** What the admin API reads from and asks of the node; the primary implements it. */
export interface AdminSource {
  /** `ok` when the node is ready (admin state) and up (health). */
  health (): Omit<HealthBody, 'status'> & { ok: boolean }
  state (): Promise<StateBody>
  setState (body: PutStateBody): Promise<PutStateResponse>
  moveClients (): Promise<HaproxyResult>
  cache (): CacheBody
  peers (): PeersBody
  /** `GET /v1/certificates`: the certificates served, their expiry and their OCSP staples. */
  certificates (): CertificatesBody
  metrics (): Promise<{ contentType: string; body: string }>
  /** What the dashboard page (`/`) draws: `GET /v1/dashboard`. */
  dashboard (): Promise<DashboardBody>
}

export interface AdminServerOptions {
  listen: HostPort
  /** `Authorization: Bearer <token>`: needed for every state change, and for reads when `readsNeedToken`. */
  token?: string
  /** Reads (every GET but /health) need the token too: the operator gave one explicitly. */
  readsNeedToken?: boolean
  /** State changes without a token (--admin-allow-unauthenticated on): the operator asked for it. */
  allowUnauthenticated?: boolean
  /** Host names requests may name besides IP literals and localhost (--admin-allow-host). */
  allowHosts?: string[]
  log?: Logger
  /** Called once per answered request (to count refusals: bad input is network input). */
  onResponse?: (statusCode: number) => void
  /** Called when the oldest connection is closed to make room for a new one (MAX_ADMIN_CONNECTIONS). */
  onEvicted?: () => void
}

/**
 * Connections the admin API keeps open at most: at the bound the oldest makes room, as at the
 * agent's port (a scraper or a dashboard needs a few; the descriptors are also the agent's and
 * the sync's, in the same process).
 */
export const MAX_ADMIN_CONNECTIONS = 128
/** A connection silent this long, or a request not fully received in this long, is cut. */
const ADMIN_IDLE_MS = 10_000

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema, 415: errorSchema, 500: errorSchema, 502: errorSchema }

/** Routes that answer without the token or a Host check: HAProxy's `option httpchk` and probes use /health. */
const PUBLIC_ROUTES = new Set(['/health'])
const READ_METHODS = new Set(['GET', 'HEAD'])

/**
 * The node's admin HTTP API (Fastify), served by the primary so it keeps answering while the
 * workers are saturated. Every route declares its schemas; every error is JSON
 * (`{statusCode, error, message}`).
 */
export async function startAdminServer (opts: AdminServerOptions, source: AdminSource): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: 16 * 1024,
    // Closed last in a stop, after the workers' grace period: a client that stalls (a request
    // half sent, a scanner) must not hold the node's exit until the hard deadline.
    forceCloseConnections: true,
    // A client that connects and sends nothing, drips a request, or never reads the answer
    // must not hold a connection forever.
    connectionTimeout: ADMIN_IDLE_MS,
    requestTimeout: ADMIN_IDLE_MS,
    keepAliveTimeout: 5000,
    // Reject what the schema does not name instead of silently dropping it, and do not
    // coerce "true" into true: an operator's typo must be an error, not a different request.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true } }
  })

  app.addHook('onResponse', async (_req, reply) => { opts.onResponse?.(reply.statusCode) })
  const open = new EvictOldest(MAX_ADMIN_CONNECTIONS, () => opts.onEvicted?.())
  app.server.on('connection', (socket: net.Socket) => { open.add(socket) })

  // A browser's simple cross-site POST arrives as text/plain; with no parser for it, Fastify
  // answers 415 before any handler runs.
  app.removeContentTypeParser('text/plain')

  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0] ?? ''
    // No such route or method: the 404 handler says so (and lists the routes), whoever asks;
    // a 401 would tell an operator with a typo that the token was the problem.
    if (PUBLIC_ROUTES.has(path) || req.is404) return
    const forbid = async (message: string): Promise<void> => {
      await reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: `${message}; nothing was changed` } satisfies ErrorBody)
    }
    if (!hostAllowed(req.headers.host, opts.allowHosts ?? [])) {
      return await forbid(`Host ${JSON.stringify(req.headers.host)} does not name this node (IP addresses and localhost are accepted; add a name with --admin-allow-host)`)
    }
    const read = READ_METHODS.has(req.method)
    if (!read) {
      const crossSite = crossSiteReason(req.headers as Record<string, string | undefined>)
      if (crossSite !== undefined) return await forbid(`refused a cross-site state change: ${crossSite}`)
    }
    // The dashboard's page and files hold no data: a browser without the token loads them, then
    // shows what /health says and asks for the token its data route needs.
    if (read && (opts.readsNeedToken !== true || DASHBOARD_PAGE_PATHS.has(path))) return
    if (opts.token !== undefined && bearerMatches(req.headers.authorization, opts.token)) return
    if (!read && opts.allowUnauthenticated === true) return
    const given = req.headers.authorization === undefined ? 'no Authorization header' : 'a wrong bearer token'
    await reply.code(401).header('www-authenticate', 'Bearer realm="tlsfleet"').send({
      statusCode: 401,
      error: 'Unauthorized',
      message: `${given}: ${read ? 'this node' : 'a state change'} requires "Authorization: Bearer <token>" with the token from its --admin-token-file (or the admin.token it generated in its --state-dir)`
    } satisfies ErrorBody)
  })

  app.setErrorHandler(async (err: FastifyError, req, reply) => {
    if (err instanceof AdminRequestError) {
      return await reply.code(err.statusCode).send({ statusCode: err.statusCode, error: err.error, message: err.message } satisfies ErrorBody)
    }
    if (err.validation !== undefined) {
      const details = err.validation.map((v) => {
        const where = `${err.validationContext ?? 'request'}${v.instancePath.replace(/\//g, '.')}`
        const params = v.params as { allowedValues?: unknown[]; additionalProperty?: string }
        if (params.allowedValues !== undefined) return `${where} must be one of ${params.allowedValues.map((a) => JSON.stringify(a)).join(', ')}`
        if (params.additionalProperty !== undefined) return `${where} has an unknown field ${JSON.stringify(params.additionalProperty)}`
        return `${where} ${v.message ?? 'is invalid'}`
      })
      return await reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: `${details.join('; ')}; nothing was changed` } satisfies ErrorBody)
    }
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
    if (status >= 500) opts.log?.error({ err, url: req.url }, 'admin API error')
    const label = status === 415 ? 'Unsupported Media Type' : status === 413 ? 'Payload Too Large' : status >= 500 ? 'Internal Server Error' : 'Bad Request'
    // Fastify refuses prototype poisoning (a "__proto__" or "constructor.prototype" key) with the same error as broken JSON.
    const hint = status === 415 ? ' (send the body as Content-Type: application/json)' : err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ? ', or it has a "__proto__" or "constructor" key, which is refused' : ''
    return await reply.code(status).send({ statusCode: status, error: label, message: status >= 500 ? err.message : `${err.message}${hint}; nothing was changed` } satisfies ErrorBody)
  })

  app.setNotFoundHandler(async (req, reply) => {
    return await reply.code(404).send({
      statusCode: 404,
      error: 'Not Found',
      message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}; routes: GET / (dashboard), GET /health, GET|PUT /v1/state, POST /v1/clients/move, GET /v1/cache, GET /v1/peers, GET /v1/certificates, GET /v1/dashboard, GET /metrics`
    } satisfies ErrorBody)
  })

  app.get('/health', { schema: { response: { 200: healthSchema, 503: healthSchema } } }, async (_req, reply) => {
    const { ok, ...rest } = source.health()
    return await reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', ...rest } satisfies HealthBody)
  })

  app.get('/v1/state', { schema: { response: { 200: stateSchema, ...errors } } }, async () => await source.state())

  app.put<{ Body: PutStateBody }>('/v1/state', { schema: { body: putStateBodySchema, response: { 200: putStateResponseSchema, ...errors } } },
    async (req) => await source.setState(req.body))

  app.post('/v1/clients/move', { schema: { response: { 200: moveClientsResponseSchema, ...errors } } }, async (_req, reply) => {
    const result = await source.moveClients()
    if (!result.ok) return await reply.code(502).send({ statusCode: 502, error: 'Bad Gateway', message: `haproxy: ${result.commands.filter((c) => !c.ok).map((c) => `${c.command}: ${c.error ?? 'failed'}`).join('; ')}` } satisfies ErrorBody)
    return result
  })

  app.get('/v1/cache', { schema: { response: { 200: cacheSchema, ...errors } } }, async () => source.cache())

  app.get('/v1/peers', { schema: { response: { 200: peersSchema, ...errors } } }, async () => source.peers())
  app.get('/v1/certificates', { schema: { response: { 200: certificatesSchema, ...errors } } }, async () => source.certificates())

  registerDashboard(app, { data: async () => await source.dashboard(), tokenRequired: opts.readsNeedToken === true })

  app.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await source.metrics()
    return await reply.type(contentType).send(body)
  })

  await app.listen({ host: opts.listen.host, port: opts.listen.port })
  return app
}
