import net from 'node:net'

/** A parsed `HOST:PORT` endpoint. IPv6 hosts are written `[::1]:8443` on the command line. */
export interface HostPort {
  host: string
  port: number
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
    if (end < 0 || trimmed[end + 1] !== ':') return 'expected [IPV6]:PORT'
    host = trimmed.slice(1, end)
    portText = trimmed.slice(end + 2)
    if (!net.isIPv6(host)) return `"${host}" is not an IPv6 address`
  } else {
    const colon = trimmed.lastIndexOf(':')
    if (colon < 0) return 'expected HOST:PORT'
    host = trimmed.slice(0, colon)
    portText = trimmed.slice(colon + 1)
    if (host.includes(':')) return 'IPv6 addresses must be written in brackets, e.g. [::1]:8443'
    if (host === '') host = '0.0.0.0'
    if (!/^[A-Za-z0-9.-]+$/.test(host)) return `"${host}" is not a valid host name or address`
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
