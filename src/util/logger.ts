import pino, { type Logger } from 'pino'
import pretty from 'pino-pretty'

export type { Logger }
export type LogFormat = 'json' | 'pretty' | 'auto'

/**
 * JSON logs for machines, readable logs for people: `auto` picks pretty output only when
 * stdout is a terminal. Pretty printing runs in-process (no transport thread) because every
 * worker has its own logger and the volume is low (connections are not logged at info).
 */
export function createLogger (opts: { level: string; format: LogFormat; name?: string; base?: Record<string, unknown> }): Logger {
  const usePretty = opts.format === 'pretty' || (opts.format === 'auto' && process.stdout.isTTY === true)
  const options = { level: opts.level, name: opts.name, base: { pid: process.pid, ...opts.base }, serializers: { err: serializeError } }
  // Synchronous writes: lines logged just before an exit (a refusal, a worker's crash, the
  // stop) are neither lost nor reordered, which pino's asynchronous default allows (a line in an
  // asynchronous write is overtaken by the exit's synchronous flush of the next). The volume is
  // low enough for that: nothing is logged per connection at info.
  if (!usePretty) return pino(options, pino.destination({ dest: 1, sync: true }))
  return pino(options, pretty({ colorize: process.stdout.isTTY === true, sync: true, ignore: 'hostname' }))
}

/**
 * pino's error serializer, except that a message which already says its cause's (ours mostly
 * do: "cannot read X: EACCES ...") is kept as written: pino appends the causes' messages, and
 * the log said the same errno twice ("...: connect ECONNREFUSED P: connect ECONNREFUSED P").
 */
export function serializeError (err: unknown): unknown {
  const serialized = pino.stdSerializers.err(err as Error) as unknown
  const cause = (err as { cause?: unknown } | null)?.cause
  if (cause instanceof Error && err instanceof Error && err.message.includes(cause.message) && typeof serialized === 'object' && serialized !== null) {
    (serialized as { message: string }).message = err.message
  }
  return serialized
}
