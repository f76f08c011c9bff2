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
  const options = { level: opts.level, name: opts.name, base: { pid: process.pid, ...opts.base } }
  if (!usePretty) return pino(options)
  return pino(options, pretty({ colorize: process.stdout.isTTY === true, sync: true, ignore: 'hostname' }))
}
