import net from 'node:net'
import { formatCidr, type Cidr } from '../config/cidr.js'

/**
 * Who may send a PROXY header (--proxy-from): the header rewrites the client's address for the
 * backend (logs, rate limits, ACLs), so only the balancers' own are believed. A BlockList
 * (made for this: CIDR ranges, IPv4-mapped IPv6 peers matched as IPv4) built once per worker.
 */
export function proxyTrustList (from: ReadonlyArray<Cidr | 'any'>): net.BlockList | undefined {
  const ranges = from.filter((entry): entry is Cidr => entry !== 'any')
  if (ranges.length === 0) return undefined
  const list = new net.BlockList()
  for (const range of ranges) list.addSubnet(range.address, range.prefix, range.family)
  return list
}

/** Whether the TCP peer of `socket` may send a PROXY header (its address is looked up once, by Node). */
export function isTrustedPeer (list: net.BlockList, socket: net.Socket): boolean {
  const address = socket.remoteAddress
  if (address === undefined) return false
  return list.check(address, socket.remoteFamily === 'IPv6' ? 'ipv6' : 'ipv4')
}

/**
 * What to say at start about whom PROXY headers are believed from. Without --proxy-from every
 * peer is (as before the option existed: a farm upgraded in place keeps serving), which lets
 * anyone who reaches the port forge the address the backend sees.
 */
export function proxyTrustWarning (mode: 'off' | 'v1' | 'v2' | 'auto', from: ReadonlyArray<Cidr | 'any'>): string | undefined {
  if (mode === 'off') return undefined
  const anyPeer = from.length === 0 || from.includes('any')
  if (mode === 'auto') {
    return anyPeer
      ? '--proxy-protocol-in auto believes a PROXY header from any peer: a client that connects directly can forge the address the backend sees; give --proxy-from with the balancers\' addresses'
      : `--proxy-protocol-in auto: clients may connect with or without a PROXY header; a header is believed only from --proxy-from ${from.map((c) => c === 'any' ? c : formatCidr(c)).join(',')}`
  }
  if (from.length === 0) return `--proxy-protocol-in ${mode} without --proxy-from believes a PROXY header from any peer: whoever reaches this port can forge the address the backend sees; give --proxy-from with the balancers' addresses (or --proxy-from any when a firewall already allows only them)`
  return undefined
}
