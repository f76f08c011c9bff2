import { formatHostPort, parseHostPort, type HostPort } from './host-port.js'

/**
 * Where the shared session store is (`--session-store`), as the client needs it:
 *
 *   redis://[[USER]:PASSWORD@]HOST:PORT[/DB]          one server (Valkey speaks the same protocol)
 *   redis+sentinel://[[USER]:PASSWORD@]H1:P1,H2:P2/MASTER[/DB]   Sentinel: ask them for MASTER
 *   redis+cluster://[[USER]:PASSWORD@]H1:P1,H2:P2     Cluster: the seed nodes
 *
 * and the same with `rediss` for TLS. A port may be left out (6379; 26379 for Sentinels).
 */
export interface StoreTarget {
  mode: 'standalone' | 'sentinel' | 'cluster'
  tls: boolean
  hosts: HostPort[]
  username?: string
  password?: string
  db: number
  /** Sentinel: the name of the master set. */
  master?: string
}

const SCHEMES: Record<string, { mode: StoreTarget['mode']; tls: boolean }> = {
  redis: { mode: 'standalone', tls: false },
  rediss: { mode: 'standalone', tls: true },
  'redis+sentinel': { mode: 'sentinel', tls: false },
  'rediss+sentinel': { mode: 'sentinel', tls: true },
  'redis+cluster': { mode: 'cluster', tls: false },
  'rediss+cluster': { mode: 'cluster', tls: true }
}

/** Parse the option; returns what is wrong as a string instead of throwing (the config loader names the key). */
export function parseStoreUrl (text: string): StoreTarget | string {
  const match = /^([a-z+]+):\/\/(?:([^@/]*)@)?([^/]+)(?:\/(.*))?$/.exec(text.trim())
  if (match === null) return 'expected redis://HOST:PORT[/DB] (or rediss://, redis+sentinel://, redis+cluster://)'
  const [, schemeText = '', auth, hostsText = '', pathText = ''] = match
  const scheme = SCHEMES[schemeText]
  if (scheme === undefined) return `unknown scheme "${schemeText}://" (expected ${Object.keys(SCHEMES).map((s) => `${s}://`).join(', ')})`
  const defaultPort = scheme.mode === 'sentinel' ? 26379 : 6379
  const hosts: HostPort[] = []
  for (const item of hostsText.split(',')) {
    const withPort = /:\d+$/.test(item) ? item : `${item}:${defaultPort}`
    const parsed = parseHostPort(withPort)
    if (typeof parsed === 'string') return `"${item}": ${parsed}`
    hosts.push(parsed)
  }
  if (scheme.mode === 'standalone' && hosts.length > 1) return 'one HOST:PORT for redis:// (several servers: redis+sentinel:// or redis+cluster://)'
  const target: StoreTarget = { ...scheme, hosts, db: 0 }
  if (auth !== undefined) {
    const colon = auth.indexOf(':')
    if (colon < 0) return 'credentials must be USER:PASSWORD@ or :PASSWORD@'
    let username: string
    let password: string
    try {
      username = decodeURIComponent(auth.slice(0, colon))
      password = decodeURIComponent(auth.slice(colon + 1))
    } catch {
      return 'the credentials hold a "%" that starts no %-escape: write % @ / : in a user name or password as %25 %40 %2F %3A'
    }
    if (username !== '') target.username = username
    if (password !== '') target.password = password
  }
  const parts = pathText.split('/').filter((p) => p !== '')
  if (scheme.mode === 'sentinel') {
    const master = parts.shift()
    if (master === undefined) return 'redis+sentinel:// needs the master name: redis+sentinel://H1:P1,H2:P2/MASTER[/DB]'
    target.master = master
  }
  const dbText = parts.shift()
  if (parts.length > 0) return `unexpected path "/${pathText}"`
  if (dbText !== undefined) {
    if (scheme.mode === 'cluster') return 'a Cluster has no database number'
    if (!/^\d{1,2}$/.test(dbText)) return `database "${dbText}" is not a number from 0 to 99`
    target.db = Number(dbText)
  }
  return target
}

/** The target for logs and /v1/cache: the URL without the password. */
export function describeStoreTarget (target: StoreTarget): string {
  const scheme = Object.entries(SCHEMES).find(([, s]) => s.mode === target.mode && s.tls === target.tls)?.[0] ?? 'redis'
  const user = target.username !== undefined ? `${target.username}@` : ''
  const path = [target.master, target.mode === 'cluster' ? undefined : String(target.db)].filter((p) => p !== undefined).join('/')
  return `${scheme}://${user}${target.hosts.map(formatHostPort).join(',')}${path !== '' ? `/${path}` : ''}`
}
