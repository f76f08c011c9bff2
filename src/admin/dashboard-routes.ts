import type { FastifyInstance } from 'fastify'
import { readWebAsset, type WebAsset } from '../util/web-assets.js'
import { dashboardSchema, type DashboardBody } from './dashboard-schema.js'
import { errorSchema } from './schemas.js'

/** The page and its files: readable without the token (they hold no data); the data route is not. */
const FILES: Record<string, { asset: WebAsset; type: string }> = {
  '/': { asset: 'dashboard.html', type: 'text/html; charset=utf-8' },
  '/dashboard/dashboard.js': { asset: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/dashboard.css': { asset: 'dashboard.css', type: 'text/css; charset=utf-8' },
  '/dashboard/charts.js': { asset: 'charts.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/common.css': { asset: 'common.css', type: 'text/css; charset=utf-8' },
  '/dashboard/uplot.js': { asset: 'uplot.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/uplot.css': { asset: 'uplot.css', type: 'text/css; charset=utf-8' }
}

export const DASHBOARD_PAGE_PATHS: ReadonlySet<string> = new Set(Object.keys(FILES))

/**
 * Only this origin's files run, nothing is framed or fetched elsewhere, no form posts: the page
 * reads the admin API of the node that served it and changes nothing.
 */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-cache'
}

/** Placeholder in index.html the server fills, so the page knows whether to ask for a token first. */
const TOKEN_PLACEHOLDER = '{{TOKEN_REQUIRED}}'

/**
 * The live dashboard at `/`: a static page (files read once, at start) that polls
 * `GET /v1/dashboard`. Read-only: only GET routes.
 */
export interface DashboardRoutesOptions {
  data: () => Promise<DashboardBody>
  /** Reads need the token (an explicit --admin-token-file): the page asks for it first. */
  tokenRequired: boolean
}

export function registerDashboard (app: FastifyInstance, opts: DashboardRoutesOptions): void {
  for (const [route, { asset, type }] of Object.entries(FILES)) {
    let body = readWebAsset(asset)
    if (asset === 'dashboard.html') body = body.replace(TOKEN_PLACEHOLDER, opts.tokenRequired ? 'required' : 'none')
    app.get(route, async (_req, reply) => await reply.headers(SECURITY_HEADERS).type(type).send(body))
  }
  app.get('/v1/dashboard', { schema: { response: { 200: dashboardSchema, 401: errorSchema, 500: errorSchema } } }, async (_req, reply) => {
    return await reply.header('cache-control', 'no-store').send(await opts.data())
  })
}
