import net from 'node:net'

/** Ask the kernel for a free TCP port on `host` (bind to 0, read it back, release it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen({ host, port: 0 }, () => {
      const address = server.address()
      if (address === null || typeof address === 'string') {
        reject(new Error('unexpected server address'))
        return
      }
      const port = address.port
      server.close(() => resolve(port))
    })
  })
}

/** Several distinct free ports at once. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>()
  for (let i = 0; ports.size < count && i < count * 20; i++) ports.add(await freePort(host))
  if (ports.size < count) throw new Error(`could not find ${count} free ports`)
  return [...ports]
}
