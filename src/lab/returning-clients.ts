import type { HostPort } from '../config/host-port.js'
import { tlsHandshake, type TlsVersion } from './tls-client.js'

/** How a client resumes: TLS 1.2 by session ID (no tickets), TLS 1.2 ticket, TLS 1.3 ticket. */
export type ClientKind = 'tls12-id' | 'tls12-ticket' | 'tls13-ticket'
export const CLIENT_KINDS: readonly ClientKind[] = ['tls12-id', 'tls12-ticket', 'tls13-ticket']

export function kindVersion (kind: ClientKind): TlsVersion { return kind === 'tls13-ticket' ? '1.3' : '1.2' }

/** One connection of one client, as the client saw it, joined with the node HAProxy chose. */
export interface ConnectionRecord {
  client: number
  kind: ClientKind
  /** ms since the load started. */
  start: number
  end: number
  ok: boolean
  resumed: boolean
  /** Whether the client offered a session (a returning client). */
  offered: boolean
  /** Node that served it (from HAProxy's log), 'none' when HAProxy had no server, undefined until known. */
  node?: string
  error?: string
  localPort?: number
}

export interface ReturningClientsOptions {
  target: HostPort
  clients: number
  /** Connections per second over all clients (each client waits clients/rate s between). */
  rate: number
  kinds?: readonly ClientKind[]
  /** Safety bound on the number of connections (default a million when records are kept, none otherwise). */
  maxConnections?: number
  onRecord?: (record: ConnectionRecord) => void
  /**
   * false: a record is only handed to onRecord, neither kept nor joined with HAProxy's log, so
   * a run without an end (the compose load client, `lab --load`) holds nothing. Default true:
   * the failover scene analyses them all.
   */
  keepRecords?: boolean
}

/**
 * Returning clients: each one keeps its TLS session and reconnects every few hundred ms,
 * resuming when it can, like browsers and API clients do. Each connection carries one HTTP
 * request answered by a demo backend through HAProxy and a node. Which node served it comes
 * from HAProxy's per-connection log line, joined on the client's source port.
 */
export class ReturningClients {
  readonly records: ConnectionRecord[] = []
  private readonly t0 = performance.now()
  private running = false
  private loops: Array<Promise<void>> = []
  private readonly waitingForLog = new Map<number, ConnectionRecord>()
  private readonly logsWithoutRecord = new Map<number, { node: string; at: number }>()
  private started = 0

  constructor (private readonly opts: ReturningClientsOptions) {}

  now (): number { return performance.now() - this.t0 }

  start (): void {
    this.running = true
    const kinds = this.opts.kinds ?? CLIENT_KINDS
    const gapMs = (this.opts.clients / this.opts.rate) * 1000
    for (let i = 0; i < this.opts.clients; i++) {
      const kind = kinds[i % kinds.length] as ClientKind
      this.loops.push(this.clientLoop(i, kind, gapMs, (i / this.opts.clients) * gapMs))
    }
  }

  async stop (): Promise<void> {
    this.running = false
    await Promise.all(this.loops)
    this.loops = []
  }

  /** Feed one HAProxy output line; `LAB <client port> <server> <termination state>`. */
  haproxyLine (line: string): void {
    const match = /^LAB (\d+) (\S+) (\S+)/.exec(line)
    if (match === null) return
    const port = Number(match[1])
    const server = match[2] as string
    const node = server.includes('/') ? server.slice(server.indexOf('/') + 1) : server
    const name = node === '<NOSRV>' ? 'none' : node
    const record = this.waitingForLog.get(port)
    if (record !== undefined) {
      this.waitingForLog.delete(port)
      record.node = name
      return
    }
    this.logsWithoutRecord.set(port, { node: name, at: this.now() })
    if (this.logsWithoutRecord.size > 5000) {
      const cutoff = this.now() - 5000
      for (const [p, e] of this.logsWithoutRecord) if (e.at < cutoff) this.logsWithoutRecord.delete(p)
    }
  }

  private attach (record: ConnectionRecord): void {
    if (record.localPort === undefined) { record.node = 'none'; return }
    const logged = this.logsWithoutRecord.get(record.localPort)
    if (logged !== undefined && logged.at >= record.start - 50) {
      this.logsWithoutRecord.delete(record.localPort)
      record.node = logged.node
      return
    }
    this.waitingForLog.set(record.localPort, record)
  }

  private async clientLoop (id: number, kind: ClientKind, gapMs: number, offsetMs: number): Promise<void> {
    await sleep(offsetMs)
    let session: Buffer | undefined
    const keep = this.opts.keepRecords !== false
    const max = this.opts.maxConnections ?? (keep ? 1_000_000 : Infinity)
    while (this.running && this.started < max) {
      this.started++
      const start = this.now()
      const result = await tlsHandshake({
        host: this.opts.target.host,
        port: this.opts.target.port,
        version: kindVersion(kind),
        tickets: kind !== 'tls12-id',
        request: true,
        timeoutMs: 5000,
        ...(session !== undefined ? { session } : {})
      })
      const record: ConnectionRecord = { client: id, kind, start, end: this.now(), ok: result.ok, resumed: result.resumed, offered: session !== undefined }
      if (result.error !== undefined) record.error = result.error
      if (result.localPort !== undefined) record.localPort = result.localPort
      if (result.ok && result.session !== undefined) session = result.session
      if (keep) {
        this.records.push(record)
        this.attach(record)
      }
      this.opts.onRecord?.(record)
      // Jitter keeps the clients from marching in lock step.
      if (this.running) await sleep(gapMs * (0.75 + Math.random() * 0.5))
    }
  }
}

async function sleep (ms: number): Promise<void> { await new Promise((resolve) => setTimeout(resolve, ms)) }
