import { z } from 'zod'

/**
 * What the CLI reads from a node's answers and every tlsfleet version sends, checked before it
 * is used: an answer from something else at --admin (another service's JSON, `{}`) must be an
 * error naming the field, not a status table of `undefined`s, nor a drain reported done that
 * never happened. Fields added later (the store's `connected`, a certificate's `attention`)
 * are optional here: a newer CLI still reads an older node.
 */

const count = z.number()
const adminState = z.enum(['ready', 'drain', 'maint'])

export const STATE_ANSWER = z.object({
  node: z.string(),
  state: z.string(),
  health: z.string(),
  agentReply: z.string(),
  weightPercent: z.number(),
  workers: z.object({ configured: count, listening: count }),
  connections: count,
  handshakes: z.object({ full: count, resumed: count, perSecond: z.number() })
})

const stats = z.object({ entries: count, bytes: count, hits: count, misses: count })

export const CACHE_ANSWER = z.object({ l2: stats, l1: z.array(stats) })

export const PEERS_ANSWER = z.object({
  sync: z.string(),
  peers: z.array(z.object({ address: z.string(), packetsIn: count, packetsOut: count, rejected: z.record(z.string(), z.number().optional()) }))
})

export const CERTIFICATES_ANSWER = z.object({
  ocspStapling: z.boolean(),
  certificates: z.array(z.object({ file: z.string(), names: z.array(z.string()), notAfter: z.string(), expiresInDays: z.number() }))
})

export const PUT_STATE_ANSWER = z.object({
  state: adminState,
  previous: adminState,
  changed: z.boolean(),
  haproxy: z.object({ ok: z.boolean(), commands: z.array(z.object({ command: z.string(), ok: z.boolean() })) }).optional()
})

export type AnswerShape = z.ZodType

/** Why `json` is not such an answer (the first field that is missing or wrong), or undefined. */
export function answerProblem (shape: AnswerShape, json: unknown): string | undefined {
  const result = shape.safeParse(json)
  if (result.success) return undefined
  const issue = result.error.issues[0]
  if (issue === undefined) return 'not the expected answer'
  const where = issue.path.length === 0 ? 'the answer' : issue.path.map(String).join('.')
  return `${where}: ${issue.message}`
}
