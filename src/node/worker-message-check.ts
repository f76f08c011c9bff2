import type { SessionUpdate, L1Request } from '../cache/l2-responder.js'
import { isSessionWithId } from '../tls/session-der.js'
import type { L1Stats, WorkerToPrimary } from './messages.js'

/**
 * The primary's check of what a worker sends it. Workers parse what clients send (ClientHellos,
 * PROXY headers) and run OpenSSL on it: a worker with a bug, or in an attacker's hands, can put
 * anything on its IPC channel. A message the primary cannot use as its type says is refused
 * here, whole, before any part of the primary reads it: a wrong type in one field was an
 * exception in the primary's event loop, and that stopped the node. Hand-written, not a schema:
 * New and Get come once per handshake, and these checks are a few comparisons each.
 */

/** Why a message was refused (the `reason` label of tlsfleet_worker_messages_refused_total). */
export type RefusalReason = 'malformed' | 'session' | 'report' | 'out_of_turn' | 'too_many_gets' | 'too_many_dels'

export type CheckedMessage =
  | { ok: true; message: WorkerToPrimary }
  /** A batch whose bad updates were left out: the good ones still count. */
  | { ok: true; message: WorkerToPrimary; refused: Refusal }
  | { ok: false; refused: Refusal }

export interface Refusal { reason: RefusalReason; detail: string }

/** OpenSSL's bound on a session ID (SSL_MAX_SSL_SESSION_ID_LENGTH): what the sync and the store take too. */
export const MAX_SESSION_ID_BYTES = 32
/** A session's DER: what one sync update carries (a u16 length); real ones are a few hundred bytes. */
export const MAX_SESSION_DER_BYTES = 0xffff
/** New and Del of one turn of a worker's event loop: a few hundred under load. */
export const MAX_BATCH_UPDATES = 10_000
/**
 * A worker stamps a new session with its clock, the primary's clock: a date ahead of it is no
 * session a worker made (it would outlive the session lifetime in L2, and peers refuse it).
 */
export const CREATED_AT_SLACK_SECONDS = 2
/** Free text a worker sends (a bind error, a --user failure): enough for any errno message. */
const MAX_TEXT_CHARS = 1024
/**
 * A worker's metrics: 48 families, ~130 samples and ~2,000 characters of labels at start, a few
 * hundred samples with every label seen. Within 10,000 samples of 8 labels of 256 characters a
 * worker made the page 19 MB, each scrape 0.5 s of the primary's time, and the primary 400 MB
 * bigger: the label characters are bounded in all too.
 */
export const MAX_METRIC_FAMILIES = 256
export const MAX_METRIC_SAMPLES = 5000
export const MAX_METRIC_LABEL_CHARS = 256 * 1024
const MAX_LABELS = 8
const MAX_NAME_CHARS = 200
const MAX_HELP_CHARS = 1024
const MAX_LABEL_VALUE_CHARS = 256
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
/** Prometheus label names; those starting with `__` are reserved (and `__proto__` is one). */
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const METRIC_TYPES = new Set(['counter', 'gauge', 'histogram', 'summary'])
/** prom-client's aggregators (AggregatorRegistry): any other name made the page fail. */
const AGGREGATORS = new Set(['sum', 'first', 'min', 'max', 'average', 'omit'])

const refuse = (reason: RefusalReason, detail: string): { ok: false; refused: Refusal } => ({ ok: false, refused: { reason, detail } })

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A count a worker keeps: 1e300 handshakes, kept in the retired totals, froze the node's rates for good. */
function isCount (value: unknown): value is number {
  return typeof value === 'number' && value >= 0 && value <= Number.MAX_SAFE_INTEGER
}

/** `nowSeconds`: the primary's clock, for the creation time of a New. */
export function checkWorkerMessage (value: unknown, nowSeconds: number): CheckedMessage {
  if (!isRecord(value) || typeof value.t !== 'string') return refuse('malformed', 'not an object with a string `t`')
  switch (value.t) {
    case 'session-new':
    case 'session-del': {
      const problem = updateProblem(value, nowSeconds)
      return problem === undefined ? { ok: true, message: value as SessionUpdate } : refuse('session', problem)
    }
    case 'session-get':
      if (!Number.isSafeInteger(value.req)) return refuse('session', 'get: `req` is not an integer')
      return idProblem(value.id) === undefined ? { ok: true, message: value as L1Request } : refuse('session', `get: ${idProblem(value.id) as string}`)
    case 'session-batch':
      return checkBatch(value.updates, nowSeconds)
    case 'report':
      return checkReport(value)
    case 'ready':
    case 'listening':
      return { ok: true, message: { t: value.t } }
    case 'listener':
      return Number.isSafeInteger(value.index) && (value.index as number) >= 0 ? { ok: true, message: { t: 'listener', index: value.index as number } } : refuse('malformed', 'listener: `index` is not an integer')
    case 'privileges-failed':
      return typeof value.message === 'string' ? { ok: true, message: { t: 'privileges-failed', message: text(value.message) } } : refuse('malformed', 'privileges-failed: `message` is not a string')
    case 'listen-failed':
      if (typeof value.address !== 'string' || typeof value.code !== 'string' || typeof value.message !== 'string') return refuse('malformed', 'listen-failed: `address`, `code` or `message` is not a string')
      return { ok: true, message: { t: 'listen-failed', address: text(value.address), code: text(value.code), message: text(value.message) } }
    default:
      return refuse('malformed', `unknown type ${JSON.stringify(text(value.t, 40))}`)
  }
}

function text (value: string, max = MAX_TEXT_CHARS): string {
  return value.length > max ? `${value.slice(0, max)}... (${value.length} characters)` : value
}

function idProblem (id: unknown): string | undefined {
  if (!Buffer.isBuffer(id)) return 'the session ID is not bytes'
  if (id.length < 1 || id.length > MAX_SESSION_ID_BYTES) return `a session ID of ${id.length} bytes (1 to ${MAX_SESSION_ID_BYTES})`
  return undefined
}

function updateProblem (update: Record<string, unknown>, nowSeconds: number): string | undefined {
  const id = idProblem(update.id)
  if (id !== undefined) return `${update.t === 'session-new' ? 'new' : 'del'}: ${id}`
  if (update.t === 'session-del') return undefined
  const { der, createdAt } = update
  if (!Buffer.isBuffer(der) || der.length < 1 || der.length > MAX_SESSION_DER_BYTES) return `new: the session is not 1 to ${MAX_SESSION_DER_BYTES} bytes`
  if (!Number.isSafeInteger(createdAt) || (createdAt as number) < 0) return 'new: the creation time is not a Unix time in seconds'
  if ((createdAt as number) > nowSeconds + CREATED_AT_SLACK_SECONDS) return `new: created ${(createdAt as number) - nowSeconds} s in the future`
  // Else L2 would keep, and the sync seal for every peer, bytes a worker never got from OpenSSL.
  if (!isSessionWithId(der, update.id as Buffer)) return 'new: the bytes are not an SSL_SESSION with this session ID'
  return undefined
}

function checkBatch (updates: unknown, nowSeconds: number): CheckedMessage {
  if (!Array.isArray(updates) || updates.length === 0) return refuse('session', 'batch: `updates` is not a list of updates')
  if (updates.length > MAX_BATCH_UPDATES) return refuse('session', `batch: ${updates.length} updates (at most ${MAX_BATCH_UPDATES})`)
  let good: SessionUpdate[] | undefined
  let first: string | undefined
  let bad = 0
  for (let i = 0; i < updates.length; i++) {
    const update: unknown = updates[i]
    // Only New and Del: a Get or a batch inside a batch is nothing a worker sends.
    const problem = !isRecord(update) || (update.t !== 'session-new' && update.t !== 'session-del') ? 'batch: an item is not a New or a Del' : updateProblem(update, nowSeconds)
    if (problem === undefined) {
      good?.push(update as SessionUpdate)
      continue
    }
    // The list is copied only once an update is refused: the usual batch passes as it came.
    good ??= updates.slice(0, i) as SessionUpdate[]
    first ??= problem
    bad++
  }
  if (good === undefined) return { ok: true, message: { t: 'session-batch', updates: updates as SessionUpdate[] } }
  const refused = { reason: 'session' as const, detail: `${first as string}${bad > 1 ? ` (and ${bad - 1} more in the batch)` : ''}` }
  return good.length > 0 ? { ok: true, message: { t: 'session-batch', updates: good }, refused } : { ok: false, refused }
}

function checkReport (report: Record<string, unknown>): CheckedMessage {
  const { req, l1, handshakes } = report
  if (!Number.isSafeInteger(req)) return refuse('report', '`req` is not an integer')
  if (!isRecord(l1) || !isCount(l1.entries) || !isCount(l1.hits) || !isCount(l1.misses) || !isCount(l1.bytes)) return refuse('report', '`l1` is not four counts')
  if (!isRecord(handshakes) || !isCount(handshakes.full) || !isCount(handshakes.resumed)) return refuse('report', '`handshakes` is not two counts')
  const elu = report.eventLoopUtilization
  if (typeof elu !== 'number' || !(elu >= 0 && elu <= 1)) return refuse('report', '`eventLoopUtilization` is not between 0 and 1')
  if (!isCount(report.activeConnections) || !isCount(report.connectionLimit)) return refuse('report', '`activeConnections` or `connectionLimit` is not a count')
  const metrics = metricsProblem(report.metrics)
  if (metrics !== undefined) return refuse('report', `metrics: ${metrics}`)
  const l1Stats: L1Stats = { entries: l1.entries, hits: l1.hits, misses: l1.misses, bytes: l1.bytes }
  return {
    ok: true,
    message: {
      t: 'report',
      req: req as number,
      // Whatever it says: the pool files a report under the worker's real pid.
      pid: 0,
      metrics: report.metrics,
      l1: l1Stats,
      eventLoopUtilization: elu,
      activeConnections: report.activeConnections,
      connectionLimit: report.connectionLimit,
      handshakes: { full: handshakes.full, resumed: handshakes.resumed },
      ...(report.final === true ? { final: true } : {})
    }
  }
}

/**
 * prom-client's JSON of a registry, as the /metrics page merges it: a family that is not one
 * made the page fail at every scrape, and a NaN counter kept by a dead worker's retired counts
 * stayed on it for good. Bounded in families and samples, so a worker cannot make the page huge.
 */
function metricsProblem (metrics: unknown): string | undefined {
  if (!Array.isArray(metrics)) return 'not a list'
  if (metrics.length > MAX_METRIC_FAMILIES) return `${metrics.length} families (at most ${MAX_METRIC_FAMILIES})`
  let samples = 0
  const labelChars = { left: MAX_METRIC_LABEL_CHARS }
  for (const family of metrics as unknown[]) {
    if (!isRecord(family)) return 'a family is not an object'
    const { name, help, type, aggregator, values } = family
    if (typeof name !== 'string' || name.length > MAX_NAME_CHARS || !METRIC_NAME.test(name)) return 'a family name is not a metric name'
    if (typeof help !== 'string' || help.length > MAX_HELP_CHARS) return `${name}: help is not a string of at most ${MAX_HELP_CHARS} characters`
    if (typeof type !== 'string' || !METRIC_TYPES.has(type)) return `${name}: not a metric type`
    if (aggregator !== undefined && (typeof aggregator !== 'string' || !AGGREGATORS.has(aggregator))) return `${name}: not one of prom-client's aggregators`
    if (!Array.isArray(values)) return `${name}: values are not a list`
    samples += values.length
    if (samples > MAX_METRIC_SAMPLES) return `more than ${MAX_METRIC_SAMPLES} samples`
    for (const sample of values as unknown[]) {
      const problem = sampleProblem(sample, type, labelChars)
      if (problem !== undefined) return `${name}: ${problem}`
    }
  }
  return undefined
}

/** `labelChars.left`: what the report's labels may still take, names and string values, in characters. */
function sampleProblem (sample: unknown, type: string, labelChars: { left: number }): string | undefined {
  if (!isRecord(sample)) return 'a sample is not an object'
  const { value, labels, metricName } = sample
  // Gauges may read NaN (Prometheus takes it); a NaN count would be summed into every later page.
  if (typeof value !== 'number' || (type !== 'gauge' && !Number.isFinite(value))) return 'a sample value is not a number'
  if (metricName !== undefined && (typeof metricName !== 'string' || metricName.length > MAX_NAME_CHARS || !METRIC_NAME.test(metricName))) return 'a sample name is not a metric name'
  if (labels === undefined) return undefined
  if (!isRecord(labels)) return 'labels are not an object'
  const names = Object.keys(labels)
  if (names.length > MAX_LABELS) return `more than ${MAX_LABELS} labels`
  for (const label of names) {
    if (!LABEL_NAME.test(label) || label.startsWith('__')) return 'a label name is not one Prometheus allows'
    const v = labels[label]
    if (!(typeof v === 'string' && v.length <= MAX_LABEL_VALUE_CHARS) && !(typeof v === 'number' && !Number.isNaN(v))) return `label ${label}: not a string of at most ${MAX_LABEL_VALUE_CHARS} characters or a number`
    labelChars.left -= label.length + (typeof v === 'string' ? v.length : 0)
    if (labelChars.left < 0) return `labels of more than ${MAX_METRIC_LABEL_CHARS} characters in all`
  }
  return undefined
}
