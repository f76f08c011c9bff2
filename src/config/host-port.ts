import net from 'node:net'

/** A parsed `HOST:PORT` endpoint. IPv6 hosts are written `[::1]:8443` on the command line. */
export interface HostPort {
  host: string
  port: number
}

/**
 * A DNS host name: labels of letters, digits, underscores and inner hyphens, 1 to 63 long, 253
 * in all, an optional final dot. An underscore is no RFC 1123 host name, but DNS and the
 * resolver take it, and container and service names use it (tls_node, project_backend_1).
 */
const HOST_NAME = /^(?=.{1,253}\.?$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/

/**
 * What is wrong with a host that is not in brackets, or undefined. A name whose last label is a
 * number (decimal or 0x) is read by the resolver as an IPv4 address in a short or odd form
 * (127.1 is 127.0.0.1, 0 is 0.0.0.0): only the four-part dotted form is taken, so that the
 * listener clash check sees what will be bound, and 999.1.1.1 is refused here rather than at bind.
 */
function hostProblem (host: string): string | undefined {
  const lastLabel = host.replace(/\.$/, '').split('.').pop() ?? ''
  if (/^(\d+|0x[0-9a-f]*)$/i.test(lastLabel)) {
    return net.isIPv4(host) ? undefined : `"${host}" is not an IPv4 address (four numbers from 0 to 255, such as 127.0.0.1)`
  }
  return HOST_NAME.test(host) ? undefined : `"${host}" is not a valid host name or address`
}

/**
 * Parse `HOST:PORT`, `[IPV6]:PORT` or `:PORT` (all IPv4 interfaces).
 * Returns an error string instead of throwing, so the config loader can name the key.
 */
export function parseHostPort (text: string, { allowPortZero = false } = {}): HostPort | string {
  const trimmed = text.trim()
  let host: string
  let portText: string
  if (trimmed.startsWith('[')) {
    const end = trimmed.indexOf(']')
    if (end < 0 || trimmed[end + 1] !== ':') return 'an IPv6 address needs its port after the brackets: [IPV6]:PORT'
    host = trimmed.slice(1, end)
    portText = trimmed.slice(end + 2)
    if (host === '*') return '"[*]" (hitch\'s every address) is written [::]:PORT here (every address, IPv4 too) or 0.0.0.0:PORT (IPv4 only)'
    if (!net.isIPv6(host)) return `"${host}" is not an IPv6 address`
  } else {
    const colon = trimmed.lastIndexOf(':')
    if (colon < 0) return 'expected HOST:PORT'
    host = trimmed.slice(0, colon)
    portText = trimmed.slice(colon + 1)
    if (host.includes(':')) return 'IPv6 addresses must be written in brackets, e.g. [::1]:8443'
    if (host === '') host = '0.0.0.0'
    const problem = hostProblem(host)
    if (problem !== undefined) return problem
  }
  if (!/^\d{1,5}$/.test(portText)) return `"${portText}" is not a port number`
  const port = Number(portText)
  if (port > 65535 || (port === 0 && !allowPortZero)) return `port ${port} is out of range 1-65535`
  return { host, port }
}

/** Format an endpoint back to the `HOST:PORT` form, bracketing IPv6. */
export function formatHostPort ({ host, port }: HostPort): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}

/** True for 127.0.0.0/8, ::1 and `localhost`: addresses only this machine can reach. */
export function isLoopbackHost (host: string): boolean {
  if (host === 'localhost') return true
  if (net.isIPv4(host)) return host.startsWith('127.')
  if (net.isIPv6(host)) return host === '::1' || host === '0:0:0:0:0:0:0:1' || /^::ffff:127\./i.test(host)
  return false
}

/** What a TCP bind of a host takes on its port: every address (of a family), one address, or a name. */
type BindScope =
  | { kind: 'wildcard'; family: 4 | 6 }
  | { kind: 'address'; family: 4 | 6; address: string }
  | { kind: 'name'; name: string }

/** `::ffff:7f00:1` (as the URL parser writes ::ffff:127.0.0.1) back to dotted IPv4. */
function mappedIpv4 (canonical: string): string | undefined {
  const match = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical)
  if (match === null) return undefined
  const [high, low] = [parseInt(match[1] as string, 16), parseInt(match[2] as string, 16)]
  return [high >> 8, high & 255, low >> 8, low & 255].join('.')
}

function bindScope (host: string): BindScope {
  if (net.isIPv4(host)) return host === '0.0.0.0' ? { kind: 'wildcard', family: 4 } : { kind: 'address', family: 4, address: host }
  if (!net.isIPv6(host)) return { kind: 'name', name: host.toLowerCase().replace(/\.$/, '') }
  // A zone id (fe80::1%eth0, which Node binds as given) is not URL syntax: the address is made
  // canonical without it, and the zone kept beside it as written (interface names are case
  // sensitive), so fe80::1%eth0 and fe80::1%eth1 are two addresses and [fe80::0:1%eth0] one.
  const percent = host.indexOf('%')
  const zone = percent < 0 ? '' : host.slice(percent)
  // One spelling per address (0:0::1 is ::1); a v4-mapped address is bound as the IPv4 one.
  const canonical = new URL(`http://[${percent < 0 ? host : host.slice(0, percent)}]/`).hostname.slice(1, -1)
  const ipv4 = zone === '' ? mappedIpv4(canonical) : undefined
  if (ipv4 !== undefined) return bindScope(ipv4)
  return canonical === '::' && zone === '' ? { kind: 'wildcard', family: 6 } : { kind: 'address', family: 6, address: canonical + zone }
}

/** Whether a wildcard bind takes what the other scope names. */
function wildcardTakes (wildcard: { family: 4 | 6 }, other: BindScope): boolean {
  if (wildcard.family === 6) return true
  return other.kind !== 'name' && other.family === 4
}

/**
 * Why two TCP listeners of one process cannot both have their address, or undefined when they
 * can. Node binds `::` dual-stack (no ipv6Only), so it takes IPv4 too; `0.0.0.0` takes every
 * IPv4 address. Host names are compared as written (resolving them here would need DNS): a name
 * clashes with `::`, with the same name, and with nothing else.
 */
export function bindClash (a: HostPort, b: HostPort): string | undefined {
  if (a.port !== b.port) return undefined
  const [sa, sb] = [bindScope(a.host), bindScope(b.host)]
  if (JSON.stringify(sa) === JSON.stringify(sb)) return 'are the same address'
  for (const [wildcard, other] of [[sa, sb], [sb, sa]] as const) {
    if (wildcard.kind !== 'wildcard' || !wildcardTakes(wildcard, other)) continue
    return wildcard.family === 6
      ? `overlap: [::] takes port ${a.port} on every address, IPv4 and IPv6`
      : `overlap: 0.0.0.0 takes port ${a.port} on every IPv4 address`
  }
  return undefined
}
