import type { CertificateBundle } from '../tls/certificates.js'
import type { WorkerSettings } from './worker-settings.js'

/**
 * Messages between the primary and its workers over the cluster IPC channel (V8 "advanced"
 * serialization, so Buffers cross as Buffers). Each has a `t` tag; replies carry the
 * request's `req` number.
 */

/** Per-worker cache counters, reported with metrics; `bytes` approximates L1's memory. */
export interface L1Stats { entries: number; hits: number; misses: number; bytes: number }

export type WorkerToPrimary =
  | { t: 'ready' }
  | { t: 'listening' }
  | { t: 'session-new'; id: Buffer; der: Buffer; createdAt: number }
  | { t: 'session-get'; req: number; id: Buffer }
  | { t: 'session-del'; id: Buffer }
  | { t: 'report'; req: number; pid: number; metrics: unknown; l1: L1Stats; eventLoopUtilization: number; activeConnections: number; handshakes: { full: number; resumed: number } }
  | { t: 'drained' }

export type PrimaryToWorker =
  | { t: 'init'; settings: WorkerSettings; certificates: CertificateBundle[] }
  | { t: 'session-reply'; req: number; der: Buffer | null; createdAt: number }
  | { t: 'session-del'; id: Buffer }
  | { t: 'certificates'; certificates: CertificateBundle[] }
  /** `metrics: false`: skip the metrics JSON (the once-a-second load sample needs only the figures). */
  | { t: 'report-request'; req: number; metrics?: boolean }
  | { t: 'shutdown'; graceMs: number }

export function isWorkerMessage (value: unknown): value is WorkerToPrimary {
  return typeof value === 'object' && value !== null && typeof (value as { t?: unknown }).t === 'string'
}

export function isPrimaryMessage (value: unknown): value is PrimaryToWorker {
  return typeof value === 'object' && value !== null && typeof (value as { t?: unknown }).t === 'string'
}
