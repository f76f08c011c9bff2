import net from 'node:net'

/**
 * Checks the admin API makes before it looks at a request's route, against two browser-borne
 * attacks on an API that listens on localhost:
 * - DNS rebinding: a page on attacker.example whose name later resolves to 127.0.0.1 can read
 *   and write the API as same-origin. Its requests name attacker.example in `Host`, so only
 *   IP literals, `localhost` and names the operator allows are accepted.
 * - Cross-site requests: a page elsewhere can send a "simple" POST (text/plain, no preflight)
 *   to localhost. State changes must come with `Origin` absent or same-origin, must not be
 *   marked cross-site by `Sec-Fetch-Site`, and may only carry a JSON body (the server has no
 *   parser for anything else: 415).
 */

/** The host part of a `Host` header (`[::1]:8445` → `::1`, `Example.COM.` → `example.com`). */
export function hostOf (header: string): string {
  const text = header.trim().toLowerCase()
  if (text.startsWith('[')) return text.slice(1, text.indexOf(']') >>> 0)
  const colon = text.lastIndexOf(':')
  const host = colon >= 0 && text.indexOf(':') === colon ? text.slice(0, colon) : text
  return host.endsWith('.') ? host.slice(0, -1) : host
}

/** Whether a request naming `hostHeader` may reach the API (undefined: an HTTP/1.0 client, e.g. a health checker). */
export function hostAllowed (hostHeader: string | undefined, allowHosts: readonly string[]): boolean {
  if (hostHeader === undefined) return true
  const host = hostOf(hostHeader)
  if (host === '') return false
  return net.isIP(host) !== 0 || host === 'localhost' || allowHosts.includes(host)
}

/**
 * Why a state-changing request looks cross-site, or undefined when it does not. (Bodies other
 * than JSON are refused by the server itself: it has no parser for text/plain or forms.)
 */
export function crossSiteReason (headers: { host?: string; origin?: string; 'sec-fetch-site'?: string }): string | undefined {
  const site = headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site is ${site}`
  const origin = headers.origin
  if (origin !== undefined) {
    let originHost: string
    try { originHost = new URL(origin).host } catch { return `Origin ${JSON.stringify(origin)} is not a URL` }
    if (originHost.toLowerCase() !== (headers.host ?? '').toLowerCase()) return `Origin ${origin} is not this API`
  }
  return undefined
}
