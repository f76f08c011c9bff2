import http from 'node:http'
import net from 'node:net'
import type { HostPort } from '../config/host-port.js'
import { parseProxyHeader, type ProxyHeader } from '../proxy/proxy-protocol.js'
import { decodeTlsTlvs } from '../proxy/proxy-tlv.js'

/**
 * A small HTTP backend for demos, the lab and tests. It accepts an optional PROXY header
 * (v1 or v2, detected) and answers every request with a JSON line saying who it is and which
 * client it sees, so one can check end to end that the real client address made it through,
 * and, from PROXY v2 TLVs, what the terminator negotiated (`tls`: ALPN, SNI, version, cipher,
 * client certificate CN).
 */
export async function startDemoBackend (listen: HostPort, name = 'demo'): Promise<{ address: HostPort; close: () => Promise<void> }> {
  const clients = new WeakMap<net.Socket, ProxyHeader>()
  const httpServer = http.createServer((req, res) => {
    const proxy = clients.get(req.socket)
    const client = proxy?.source !== undefined
      ? `${proxy.source.address}:${proxy.source.port}`
      : `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`
    const tls = proxy !== undefined && proxy.tlvs.length > 0 ? decodeTlsTlvs(proxy.tlvs) : undefined
    const body = JSON.stringify({ backend: name, client, proxyProtocol: proxy?.version ?? null, ...(tls !== undefined ? { tls } : {}), method: req.method, url: req.url }) + '\n'
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  httpServer.keepAliveTimeout = 5000

  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    let buffered: Buffer = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk])
      const parsed = parseProxyHeader(buffered, 'auto')
      if (parsed.status === 'incomplete') return
      socket.removeListener('data', onData)
      socket.pause()
      if (parsed.status === 'error') { socket.destroy(); return }
      if (parsed.status === 'ok') {
        clients.set(socket, parsed.header)
        buffered = buffered.subarray(parsed.length)
      }
      if (buffered.length > 0) socket.unshift(buffered)
      httpServer.emit('connection', socket)
      socket.resume()
    }
    socket.on('data', onData)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(listen.port, listen.host, () => resolve())
  })
  const bound = server.address() as net.AddressInfo
  return {
    address: { host: listen.host, port: bound.port },
    close: async () => {
      httpServer.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
