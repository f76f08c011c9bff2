/**
 * The baseline: a plain Node `tls` server piping to the backend, one process, Node's defaults
 * (OpenSSL's internal session cache, tickets under a random per-process key).
 * Usage: node node-tls-server.js PEM LISTEN_PORT BACKEND_PORT → prints "listening PORT".
 */
import fs from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'

const [pemFile = '', listenPort = '0', backendPort = '0'] = process.argv.slice(2)
const pem = fs.readFileSync(pemFile, 'utf8')
const server = tls.createServer({ key: pem, cert: pem, minVersion: 'TLSv1.2' }, (client) => {
  const backend = net.connect(Number(backendPort), '127.0.0.1')
  client.on('error', () => backend.destroy())
  backend.on('error', () => client.destroy())
  client.pipe(backend).pipe(client)
})
server.on('tlsClientError', () => {})
server.listen(Number(listenPort), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`)
})
process.on('SIGTERM', () => process.exit(0))
