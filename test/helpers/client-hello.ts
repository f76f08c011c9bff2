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
