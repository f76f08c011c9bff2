import type { L1Request, L2Notice } from '../cache/l2-responder.js'
import type { Staple } from '../ocsp/staple-store.js'
import type { TicketKeySet } from '../tls/ticket-key-ring.js'
import type { TlsMaterial } from '../tls/tls-material.js'
import type { WorkerSettings } from './worker-settings.js'

/**
 * Messages between the primary and its workers over the cluster IPC channel (V8 "advanced"
 * serialization, so Buffers cross as Buffers). Each has a `t` tag; replies carry the
 * request's `req` number. The session-cache messages are the cache's own (cache/l2-responder.ts).
 * The primary checks every message a worker sends against these types before it reads any of
 * it (worker-message-check.ts): a worker faces the clients, the primary holds the farm secret.
 */

/** Per-worker cache counters, reported with metrics; `bytes` approximates L1's memory. */
export interface L1Stats { entries: number; hits: number; misses: number; bytes: number }

export type WorkerToPrimary =
  | { t: 'ready' }
  | { t: 'listening' }
  /** A listener could not bind; the worker exits right after (errno in `code`). */
  | { t: 'listen-failed'; address: string; code: string; message: string }
  /** With --user: a bound listener (its handle rides along) the primary keeps for a replacement. */
  | { t: 'listener'; index: number }
  /** With --user: the switch failed; the worker exits right after (it never serves as root). */
  | { t: 'privileges-failed'; message: string }
  | L1Request
  /**
   * `connectionLimit`: connections the worker admits at once (0 = no bound known). `final`: a
   * crashing worker's last counts, asked by nobody (req 0), sent just before it exits.
   */
  | { t: 'report'; req: number; pid: number; metrics: unknown; l1: L1Stats; eventLoopUtilization: number; activeConnections: number; connectionLimit: number; handshakes: { full: number; resumed: number }; final?: true }

export type PrimaryToWorker =
  | { t: 'init'; settings: WorkerSettings; material: TlsMaterial; staples: Staple[] }
  /** Before init, to a worker that replaces a dead one: that one's listener (handle attached). */
  | { t: 'listener'; index: number }
  | L2Notice
  | { t: 'tls-material'; material: TlsMaterial; staples?: Staple[] }
  | { t: 'ocsp-staples'; staples: Staple[] }
  /** At each rotation: the ticket keys that became acceptable (never the secret: ticket-key-ring.ts). */
  | { t: 'ticket-keys'; keys: TicketKeySet }
  /** `metrics: false`: skip the metrics JSON (the once-a-second load sample needs only the figures). */
  | { t: 'report-request'; req: number; metrics?: boolean }
  | { t: 'shutdown'; graceMs: number }

export function isPrimaryMessage (value: unknown): value is PrimaryToWorker {
  return typeof value === 'object' && value !== null && typeof (value as { t?: unknown }).t === 'string'
}
