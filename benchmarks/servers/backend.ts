/**
 * The bench backend: answers each connection's first bytes with one small HTTP response and
 * closes. Raw TCP, so the backend costs little on the client CPUs where it runs.
 * Usage (by the bench): node backend.js PORT → prints "listening PORT".
 */
import net from 'node:net'

const body = '{"backend":"bench"}\n'
const answer = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`
const server = net.createServer((socket) => {
  socket.on('error', () => {})
  socket.once('data', () => socket.end(answer))
})
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`)
})
process.on('SIGTERM', () => process.exit(0))
