import crypto from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'

/** OpenSSL 3's SSL_OP_NO_EXTENDED_MASTER_SECRET (SSL_OP_BIT(0)); Node's crypto.constants lacks it. */
export const SSL_OP_NO_EXTENDED_MASTER_SECRET = 0x1

/**
 * Node's tls client: one connection, returning its session and whether it resumed.
 * `noEms`: without the extended master secret, as an old client (RFC 7627).
 */
export async function nodeClient (host: string, port: number, opts: { maxVersion: tls.SecureVersion; session?: Buffer; noTicket?: boolean; noEms?: boolean }): Promise<{ reused: boolean; session: Buffer }> {
  const secureOptions = (opts.noTicket === true ? crypto.constants.SSL_OP_NO_TICKET : 0) | (opts.noEms === true ? SSL_OP_NO_EXTENDED_MASTER_SECRET : 0)
  return await new Promise((resolve, reject) => {
    const socket = tls.connect({
      host, port, servername: 'localhost', rejectUnauthorized: false, maxVersion: opts.maxVersion,
      ...(opts.session !== undefined ? { session: opts.session } : {}),
      ...(secureOptions !== 0 ? { secureOptions } : {})
    })
    let session: Buffer | undefined
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no TLS handshake with ${host}:${port} within 10 s`)) }, 10_000)
    socket.on('session', (s: Buffer) => { session = s })
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
    socket.once('secureConnect', () => {
      clearTimeout(timer)
      // TLS 1.3 tickets arrive after the handshake; give them a moment.
      setTimeout(() => {
        const reused = socket.isSessionReused()
        session ??= socket.getSession() // TLS 1.2 without tickets emits no 'session' event
        socket.destroy()
        if (session === undefined) reject(new Error('no session received'))
        else resolve({ reused, session })
      }, 150)
    })
  })
}

/**
 * The session ID in a client's session: the fourth field (after two versions and the cipher) of
 * its DER SSL_SESSION. Node 24's getSession() puts a header before the DER (a format tag and the
 * server name): the DER is the SEQUENCE that runs to the end.
 */
export function sessionIdOf (session: Buffer): Buffer {
  for (let start = 0; start + 4 < session.length; start++) {
    if (session[start] !== 0x30 || session[start + 1] !== 0x82 || start + 4 + session.readUInt16BE(start + 2) !== session.length) continue
    let at = start + 4
    for (let field = 0; field < 3; field++) at += 2 + (session[at + 1] as number)
    return session.subarray(at + 2, at + 2 + (session[at + 1] as number))
  }
  throw new Error('no DER SSL_SESSION in the session')
}

/** Send `bytes` to 127.0.0.1:`port`, collect what comes back until the server closes (or 2 s pass). */
export async function rawExchange (port: number, bytes: Buffer): Promise<Buffer> {
  return await new Promise((resolve) => {
    const chunks: Buffer[] = []
    const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.write(bytes))
    const done = (): void => { clearTimeout(timer); socket.destroy(); resolve(Buffer.concat(chunks)) }
    const timer = setTimeout(done, 2000)
    socket.on('data', (d: Buffer) => chunks.push(d))
    socket.on('error', done)
    socket.on('close', done)
  })
}

/** A ClientHello record cut into one-byte records: no server can read it ahead of OpenSSL. */
export function byteRecords (hello: Buffer): Buffer {
  return Buffer.concat([...hello.subarray(5)].map((byte) => Buffer.from([0x16, 0x03, 0x01, 0x00, 0x01, byte])))
}

/** The key name (first 16 bytes) of the ticket a server issues a TLS 1.3 client of Node's on 127.0.0.1:`port`. */
export async function tls13TicketName (port: number): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, minVersion: 'TLSv1.3' })
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('no TLS 1.3 session within 5 s')) }, 5000)
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
    socket.once('session', () => {
      clearTimeout(timer)
      const ticket = socket.getTLSTicket()
      socket.destroy()
      if (ticket === undefined) reject(new Error('no ticket')); else resolve(ticket.subarray(0, 16))
    })
  })
}
