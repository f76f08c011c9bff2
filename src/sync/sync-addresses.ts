import net from 'node:net'

/** A multicast group address (IPv4 224/4, IPv6 ff00::/8): the sync joins it instead of sending to peers. */
export function isMulticast (host: string): boolean {
  if (net.isIPv4(host)) {
    const first = Number(host.split('.')[0])
    return first >= 224 && first <= 239
  }
  return net.isIPv6(host) && host.toLowerCase().startsWith('ff')
}

/** Which peer addresses the sync socket can send to: an IPv4 socket only IPv4, one bound to an IPv6 address only IPv6, one on [::] both. */
export type PeerFamily = 'ipv4' | 'ipv6' | 'any'

/** The peer addresses a sync socket listening on `host` can reach (the sync makes an IPv6 socket for an IPv6 address only). */
export function peerFamilyOf (host: string): PeerFamily {
  if (!net.isIPv6(host)) return 'ipv4'
  return host === '::' ? 'any' : 'ipv6'
}

/** a.b.c.d for ::ffff:a.b.c.d (how a socket on [::] sees IPv4 peers), else the address lowercased. */
export function unmappedHost (host: string): string {
  const lower = host.toLowerCase()
  return lower.startsWith('::ffff:') && net.isIPv4(lower.slice(7)) ? lower.slice(7) : lower
}
