import net from 'node:net'
import { freePort } from './ports.js'

/**
 * A TCP proxy in front of a server that holds each chunk of the server's answers back by a
 * random 0..`maxDelayMs` (in order: a chunk never overtakes the one before): a store whose
 * round trip straddles the lookup bound. Loopback only.
 */
export async function startDelayProxy (target: { host: string; port: number }, maxDelayMs: number, host = '127.0.0.1'): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host)
    for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => { client.destroy(); upstream.destroy() }) }
    client.pipe(upstream)
    let lastAt = 0
    upstream.on('data', (chunk: Buffer) => {
      const at = Math.max(lastAt, Date.now() + Math.random() * maxDelayMs)
      lastAt = at
      setTimeout(() => { if (!client.destroyed) client.write(chunk) }, Math.max(0, at - Date.now()))
    })
    upstream.on('end', () => setTimeout(() => client.end(), Math.max(0, lastAt - Date.now())))
    client.on('end', () => upstream.end())
  })
  // Below the ephemeral range, as every listener of the tests (src/util/free-port.ts).
  const port = await freePort(host)
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, resolve) })
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
