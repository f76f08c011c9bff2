/**
 * The agent suite's reference: the least a Node.js process can do to answer the same probes,
 * pinned beside the node on its CPUs at the primary's priority. A bare `node:http` server
 * answers every request with a /health body, and a bare `net` server writes an agent line on
 * every connection (as tlsfleet's agent does). Whatever delays these under the same load is the
 * machine's (scheduling, the hypervisor), not tlsfleet's; what tlsfleet adds is the difference.
 * Usage: node agent-reference.js → prints one JSON line {"http":PORT,"line":PORT}; SIGTERM stops it.
 */
import http from 'node:http'
import net from 'node:net'

const BODY = JSON.stringify({ status: 'ok', state: 'ready', health: 'up' })
const httpServer = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(BODY) })
  res.end(BODY)
})
const lineServer = net.createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => { /* the prober closes first */ })
  socket.end('up ready 100%\n')
})
const listen = async (server: net.Server): Promise<number> => await new Promise((resolve) => {
  server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port))
})
const ports = { http: await listen(httpServer), line: await listen(lineServer) }
process.stdout.write(JSON.stringify(ports) + '\n')
process.on('SIGTERM', () => process.exit(0))
