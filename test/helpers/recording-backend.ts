import net from 'node:net'
import { parseProxyHeader, type ProxyHeader } from '../../src/proxy/proxy-protocol.js'

export interface BackendConnection {
  proxy?: ProxyHeader
  received: Buffer
  ended: boolean
  /** The connection was reset (ECONNRESET), not ended. */
  reset: boolean
  socket: net.Socket
}

/**
 * A backend for tests: records what each connection sends (after an optional PROXY header)
 * and answers every chunk with "echo:<chunk>". When the client half-closes it still answers
 * "bye" before closing its own side, to prove half-close works end to end.
 */
export async function startRecordingBackend (): Promise<{ port: number; connections: BackendConnection[]; close: () => Promise<void> }> {
  const connections: BackendConnection[] = []
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const conn: BackendConnection = { received: Buffer.alloc(0), ended: false, reset: false, socket }
    connections.push(conn)
    let headerDone = false
    let pending: Buffer = Buffer.alloc(0)
    socket.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'ECONNRESET') conn.reset = true })
    socket.on('data', (chunk: Buffer) => {
      if (!headerDone) {
        pending = Buffer.concat([pending, chunk])
        const parsed = parseProxyHeader(pending, 'auto')
        if (parsed.status === 'incomplete') return
        headerDone = true
        if (parsed.status === 'ok') { conn.proxy = parsed.header; chunk = pending.subarray(parsed.length) } else chunk = pending
        if (chunk.length === 0) return
      }
      conn.received = Buffer.concat([conn.received, chunk])
      socket.write(`echo:${chunk.toString()}`)
    })
    socket.on('end', () => { conn.ended = true; socket.end('bye') })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    close: async () => {
      for (const c of connections) c.socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
