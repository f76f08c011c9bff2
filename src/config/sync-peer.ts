import { parseHostPort, type HostPort } from './host-port.js'

/** A peer found by DNS: every A and AAAA record of `name`, on `port`. */
export interface DnsPeer { dns: string; port: number }

/** `--sync-peer`: an address (HOST:PORT), or `dns:NAME:PORT` for every address NAME resolves to. */
export type SyncPeer = HostPort | DnsPeer

export function isDnsPeer (peer: SyncPeer): peer is DnsPeer {
  return 'dns' in peer
}

const DNS_NAME = /^(?=.{1,253}\.?$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/

/** Parse one `--sync-peer`; returns what is wrong as a string (the config loader names the key). */
export function parseSyncPeer (text: string): SyncPeer | string {
  const trimmed = text.trim()
  if (!trimmed.startsWith('dns:')) return parseHostPort(trimmed)
  const rest = trimmed.slice(4)
  const colon = rest.lastIndexOf(':')
  if (colon < 0) return 'expected dns:NAME:PORT'
  const name = rest.slice(0, colon)
  const portText = rest.slice(colon + 1)
  if (!DNS_NAME.test(name)) return `"${name}" is not a DNS name`
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) return `"${portText}" is not a port number from 1 to 65535`
  return { dns: name, port: Number(portText) }
}

export function formatSyncPeer (peer: SyncPeer): string {
  return isDnsPeer(peer) ? `dns:${peer.dns}:${peer.port}` : (peer.host.includes(':') ? `[${peer.host}]:${peer.port}` : `${peer.host}:${peer.port}`)
}
