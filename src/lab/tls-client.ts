import { constants } from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'

/**
 * One client connection as the lab and the bench make it: TCP connect, TLS handshake (resuming
 * `session` when given), optionally one HTTP request whose answer is read to the end, close.
 *
 * - TLS 1.2 by session ID: `tickets: false` sets SSL_OP_NO_TICKET, so the client neither asks
 *   for nor offers a ticket and only the session ID can resume.
 * - TLS 1.2 / 1.3 tickets: for 1.3 the tickets arrive after the handshake (NewSessionTicket),
 *   so the connection stays open until a 'session' event (or the answer) before it closes;
 *   `openssl s_time -reuse` does not do that, which is why it never resumes 1.3.
 */
export type TlsVersion = '1.2' | '1.3'

export interface HandshakeOptions {
  host: string
  port: number
  servername?: string
  version: TlsVersion
  /** false = SSL_OP_NO_TICKET (TLS 1.2 session-ID resumption). Ignored for 1.3. */
  tickets: boolean
  session?: Buffer
  /** Send one HTTP GET and read the whole answer before closing. */
  request?: boolean
  /** Bound on the whole connection (ms). */
  timeoutMs?: number
  /** Wait this long after the handshake for a TLS 1.3 ticket when no request is made (ms). */
  ticketWaitMs?: number
  /** Written on the TCP connection before the ClientHello, as a load balancer's send-proxy does. */
  proxyHeader?: Buffer
}

export interface HandshakeResult {
  ok: boolean
  resumed: boolean
  /** 'TLSv1.2' / 'TLSv1.3', when the handshake finished. */
  protocol?: string
  /** From connect() to the end of the handshake (ms). */
  handshakeMs: number
  /** From connect() to close (ms). */
  totalMs: number
  localPort?: number
  /** The newest session the server gave, to resume the next connection with. */
  session?: Buffer
  /** What the server answered, when `request` was set. */
  body?: string
  error?: string
}

export async function tlsHandshake (opts: HandshakeOptions): Promise<HandshakeResult> {
  const started = performance.now()
  const timeoutMs = opts.timeoutMs ?? 10_000
  // With a PROXY header, TLS starts on a connection that already carries it.
  let tcp: net.Socket | undefined
  if (opts.proxyHeader !== undefined) {
    try {
      tcp = await connectWithHeader(opts.host, opts.port, opts.proxyHeader, timeoutMs)
    } catch (err) {
      return { ok: false, resumed: false, handshakeMs: 0, totalMs: performance.now() - started, error: (err as NodeJS.ErrnoException).code ?? (err as Error).message }
    }
  }
  return await new Promise((resolve) => {
    let settled = false
    let handshakeMs = 0
    let session: Buffer | undefined
    let localPort: number | undefined
    const chunks: Buffer[] = []
    const socket = tls.connect({
      ...(tcp !== undefined ? { socket: tcp } : { host: opts.host, port: opts.port }),
      servername: opts.servername ?? 'localhost',
      rejectUnauthorized: false,
      minVersion: opts.version === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
      maxVersion: opts.version === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
      ...(opts.session !== undefined ? { session: opts.session } : {}),
      ...(opts.version === '1.2' && !opts.tickets ? { secureOptions: constants.SSL_OP_NO_TICKET } : {})
    })
    const timer = setTimeout(() => finish(`timeout after ${timeoutMs} ms`), timeoutMs)
    const finish = (error?: string): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      const ok = error === undefined
      const result: HandshakeResult = {
        ok,
        resumed: handshakeMs > 0 && socket.isSessionReused(),
        handshakeMs,
        totalMs: performance.now() - started
      }
      const protocol = socket.getProtocol()
      if (handshakeMs > 0 && protocol !== null) result.protocol = protocol
      if (localPort !== undefined) result.localPort = localPort
      if (session !== undefined) result.session = session
      if (opts.request === true) result.body = Buffer.concat(chunks).toString()
      if (error !== undefined) result.error = error
      socket.destroy()
      resolve(result)
    }
    socket.on('connect', () => { localPort = socket.localPort })
    socket.on('session', (s: Buffer) => {
      session = s
      if (opts.request !== true && handshakeMs > 0) finish()
    })
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message))
    socket.on('secureConnect', () => {
      handshakeMs = performance.now() - started
      localPort ??= socket.localPort
      if (opts.request === true) {
        socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
        return
      }
      // TLS 1.2: the session is known at the end of the handshake (the 'session' event came
      // first or comes right now). TLS 1.3: wait a moment for the server's ticket.
      if (opts.version === '1.2' || session !== undefined) {
        session ??= socket.getSession()
        finish()
        return
      }
      setTimeout(() => finish(), opts.ticketWaitMs ?? 200).unref()
    })
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('end', () => {
      if (handshakeMs === 0) { finish('closed during the handshake'); return }
      const body = Buffer.concat(chunks).toString()
      if (opts.request === true && !/^HTTP\/1\.[01] 200/.test(body)) { finish(`bad answer: ${JSON.stringify(body.slice(0, 60))}`); return }
      finish()
    })
    socket.on('close', () => finish(handshakeMs === 0 ? 'closed during the handshake' : undefined))
  })
}

async function connectWithHeader (host: string, port: number, header: Buffer, timeoutMs: number): Promise<net.Socket> {
  return await new Promise((resolve, reject) => {
    const tcp = net.connect({ host, port })
    const timer = setTimeout(() => { tcp.destroy(); reject(new Error(`timeout after ${timeoutMs} ms`)) }, timeoutMs)
    tcp.once('error', (err) => { clearTimeout(timer); reject(err) })
    tcp.once('connect', () => {
      clearTimeout(timer)
      tcp.removeAllListeners('error')
      tcp.write(header)
      resolve(tcp)
    })
  })
}
