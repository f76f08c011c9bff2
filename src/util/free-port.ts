import dgram from 'node:dgram'
import net from 'node:net'

/**
 * A TCP port free on `host` now (bind 0, read it back, release it). Ports in `taken` (what this
 * lab already handed out, not yet bound) are skipped, and the new one is added: the kernel may
 * give the same released port twice in a row, and two listeners of one node would then clash.
 */
export async function freeTcpPort (host: string, taken?: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await bindZero(host)
    if (taken === undefined) return port
    if (!taken.has(port)) {
      taken.add(port)
      return port
    }
  }
  throw new Error(`no free TCP port on ${host} outside the ${taken?.size ?? 0} already taken`)
}

async function bindZero (host: string): Promise<number> {
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
export async function freeTcpUdpPort (host: string, taken?: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freeTcpPort(host, taken)
    const ok = await new Promise<boolean>((resolve) => {
      const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4')
      socket.once('error', () => { socket.close(); resolve(false) })
      socket.bind(port, host, () => socket.close(() => resolve(true)))
    })
    if (ok) return port
  }
  throw new Error(`no port free for both TCP and UDP on ${host}`)
}
