import Fastify, { type FastifyInstance } from 'fastify'
import type { HostPort } from '../config/host-port.js'

/** What the admin API reads from the node; the primary implements it. */
export interface AdminSource {
  health (): { ok: boolean; reason?: string }
  metrics (): Promise<{ contentType: string; body: string }>
}

/**
 * The node's admin HTTP API (Fastify), served by the primary so it keeps answering while the
 * workers are saturated. Every route declares its response schema; errors are JSON.
 */
export async function startAdminServer (listen: HostPort, source: AdminSource): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })

  app.get('/health', {
    schema: {
      response: {
        200: { type: 'object', properties: { status: { type: 'string' } }, required: ['status'] },
        503: { type: 'object', properties: { status: { type: 'string' }, reason: { type: 'string' } }, required: ['status'] }
      }
    }
  }, async (_req, reply) => {
    const health = source.health()
    if (health.ok) return { status: 'ok' }
    return await reply.code(503).send({ status: 'unavailable', reason: health.reason ?? 'not ready' })
  })

  app.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await source.metrics()
    return await reply.type(contentType).send(body)
  })

  await app.listen({ host: listen.host, port: listen.port })
  return app
}
