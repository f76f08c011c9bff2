import net from 'node:net'
import tls from 'node:tls'

/** A real ClientHello, as Node's TLS client sends it, captured by a plain TCP listener (then both closed). */
export async function capturedClientHello (servername: string, opts: { maxVersion?: tls.SecureVersion } = {}): Promise<Buffer> {
  const capture = net.createServer()
  await new Promise<void>((resolve) => capture.listen(0, '127.0.0.1', resolve))
  const first = new Promise<Buffer>((resolve) => capture.once('connection', (socket) => socket.once('data', (d: Buffer) => { resolve(d); socket.destroy() })))
  const client = tls.connect({ port: (capture.address() as net.AddressInfo).port, host: '127.0.0.1', servername, rejectUnauthorized: false, ...(opts.maxVersion !== undefined ? { maxVersion: opts.maxVersion } : {}) })
  client.on('error', () => {})
  const hello = await first
  client.destroy()
  capture.close()
  return hello
}

/**
 * A ClientHello in the SSLv2-compatible format (RFC 5246 Appendix E.2), as Java 6 sends it:
 * version `version` (3.1 = TLS 1.0), ECDHE-RSA-AES128-SHA, AES128-SHA and the renegotiation SCSV.
 */
export function sslv2ClientHello (version = 0x0301): Buffer {
  const specs = Buffer.from([0x00, 0xc0, 0x13, 0x00, 0x00, 0x2f, 0x00, 0x00, 0xff])
  const body = Buffer.concat([Buffer.from([0x01, version >> 8, version & 0xff, 0, specs.length, 0, 0, 0, 16]), specs, Buffer.alloc(16, 0x5a)])
  return Buffer.concat([Buffer.from([0x80 | (body.length >> 8), body.length & 0xff]), body])
}
