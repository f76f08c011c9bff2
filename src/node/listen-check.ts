import fs from 'node:fs'
import net from 'node:net'
import { formatHostPort, type HostPort } from '../config/host-port.js'
import { ListenError } from '../errors.js'

/**
 * Before the workers bind their SO_REUSEPORT listeners: is another process serving one of these
 * addresses? The kernel lets any number of SO_REUSEPORT sockets of one user share a port and
 * spreads connections over all of them, so a second node (or a stale one) on the same --listen
 * would silently take a share of the clients. A bind without SO_REUSEPORT fails as soon as
 * anyone holds the port, which is the check wanted; the probe is closed at once.
 */
export async function checkListenAddresses (addresses: HostPort[], option = '--listen'): Promise<void> {
  for (const address of addresses) {
    await new Promise<void>((resolve, reject) => {
      const probe = net.createServer()
      probe.once('error', (err) => reject(tcpListenError(option, address, err)))
      probe.listen({ host: address.host, port: address.port, exclusive: true }, () => probe.close(() => resolve()))
    })
  }
}

/**
 * A TCP listener that could not bind. EADDRINUSE usually means another process listens there;
 * when none does (no LISTEN socket on the port in /proc/net/tcp{,6}), the port is held by this
 * machine's own connections from it (TIME-WAIT after a load test, an ephemeral port), and the
 * message says so instead of sending the operator after a process that does not exist.
 */
export function tcpListenError (option: string, address: HostPort, err: unknown): ListenError {
  const busy = (err as { code?: unknown } | null)?.code === 'EADDRINUSE'
  return new ListenError(option, formatHostPort(address), err, busy && listenersOnPort(address.port) === 0)
}

/** LISTEN sockets on `port` (any address, IPv4 and IPv6); undefined when /proc cannot be read. */
export function listenersOnPort (port: number, tables = ['/proc/net/tcp', '/proc/net/tcp6']): number | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  let count = 0
  for (const table of tables) {
    let text: string
    try {
      text = fs.readFileSync(table, 'latin1')
    } catch {
      return undefined
    }
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/)
      // 0A: TCP_LISTEN.
      if (state === '0A' && local?.endsWith(`:${hexPort}`) === true) count++
    }
  }
  return count
}
