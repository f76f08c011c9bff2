import dgram from 'node:dgram'
import net from 'node:net'

/** A TCP port free on `host` now (bind 0, read it back, release it). */
export async function freeTcpPort (host: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen({ host, port: 0 }, () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
}

/** A port free on `host` for both TCP and UDP (the sync uses UDP; bounded attempts). */
export async function freeTcpUdpPort (host: string): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freeTcpPort(host)
    const ok = await new Promise<boolean>((resolve) => {
      const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4')
      socket.once('error', () => { socket.close(); resolve(false) })
      socket.bind(port, host, () => socket.close(() => resolve(true)))
    })
    if (ok) return port
  }
  throw new Error(`no port free for both TCP and UDP on ${host}`)
}
