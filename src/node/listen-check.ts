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
      probe.once('error', (err) => reject(new ListenError(option, formatHostPort(address), err)))
      probe.listen({ host: address.host, port: address.port, exclusive: true }, () => probe.close(() => resolve()))
    })
  }
}
