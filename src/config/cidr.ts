import net from 'node:net'

/** An address range: `10.0.0.0/8`, `2001:db8::/32`, or one address (`/32`, `/128`). */
export interface Cidr {
  address: string
  prefix: number
  family: 'ipv4' | 'ipv6'
}

/**
 * Parse `ADDRESS[/PREFIX]`. Returns what is wrong as a string instead of throwing, so the
 * config loader can name the key. Host bits are allowed (`10.1.2.3/8` means `10.0.0.0/8`),
 * as in HAProxy's and iptables' notation.
 */
export function parseCidr (text: string): Cidr | string {
  const trimmed = text.trim()
  const slash = trimmed.indexOf('/')
  const address = slash < 0 ? trimmed : trimmed.slice(0, slash)
  const version = net.isIP(address)
  if (version === 0) return `"${address}" is not an IPv4 or IPv6 address`
  const family = version === 4 ? 'ipv4' : 'ipv6'
  const max = version === 4 ? 32 : 128
  if (slash < 0) return { address, prefix: max, family }
  const prefixText = trimmed.slice(slash + 1)
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) return `"/${prefixText}" is not a prefix length from 0 to ${max}`
  return { address, prefix: Number(prefixText), family }
}

export function formatCidr (cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefix}`
}
