import fs from 'node:fs'
import net from 'node:net'

/**
 * Who listens on a loopback port, from Linux's socket tables (/proc/net/tcp and tcp6: the
 * network namespace of this process, the one a connection from it reaches). The CLI asks
 * before it sends a token generated in --state-dir: any local user may listen on a free port,
 * and one that took the admin port while the node was down would otherwise be handed the
 * token that drains it.
 */

const LISTEN = '0A'
const V4_ANY = '00000000'
const V6_ANY = '0'.repeat(32)

/** An IPv4 address as the table writes it: its 32 bits in the host's (little-endian) order. */
function v4Hex (address: string): string {
  return address.split('.').map((b) => Number(b).toString(16).padStart(2, '0')).reverse().join('').toUpperCase()
}

/** An IPv6 address as the table writes it: four 32-bit words, each in little-endian order. */
function v6Hex (address: string): string {
  const socket = new net.SocketAddress({ address, family: 'ipv6' })
  const groups = expandV6(socket.address)
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff])
  let out = ''
  for (let i = 0; i < 16; i += 4) out += bytes.slice(i, i + 4).reverse().map((b) => b.toString(16).padStart(2, '0')).join('')
  return out.toUpperCase()
}

function expandV6 (address: string): number[] {
  const [head = '', tail] = address.split('::') as [string, string | undefined]
  const parse = (part: string): number[] => part === '' ? [] : part.split(':').flatMap((g) => g.includes('.') ? v4Groups(g) : [parseInt(g, 16)])
  const left = parse(head)
  const right = tail === undefined ? [] : parse(tail)
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right]
}

function v4Groups (address: string): number[] {
  const b = address.split('.').map(Number) as [number, number, number, number]
  return [(b[0] << 8) | b[1], (b[2] << 8) | b[3]]
}

/** The table entries (tcp or tcp6) a connection to `host` could reach: the address itself, or a wildcard. */
function candidates (host: string): { tcp: string[]; tcp6: string[] } {
  const hosts = host === 'localhost' ? ['127.0.0.1', '::1'] : [host]
  const tcp = new Set<string>()
  const tcp6 = new Set<string>([V6_ANY])
  for (const h of hosts) {
    if (net.isIPv4(h)) {
      tcp.add(v4Hex(h)).add(V4_ANY)
      tcp6.add(v6Hex(`::ffff:${h}`))
    } else if (net.isIPv6(h)) {
      tcp6.add(v6Hex(h))
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(h)?.[1]
      if (mapped !== undefined) tcp.add(v4Hex(mapped)).add(V4_ANY)
    }
  }
  return { tcp: [...tcp], tcp6: [...tcp6] }
}

/**
 * The uids of the listening sockets a connection to host:port would reach (empty: none
 * listens), or undefined where there are no such tables to read (not Linux).
 */
export function listenerUids (host: string, port: number, procNet = '/proc/net'): number[] | undefined {
  const want = candidates(host)
  const portHex = port.toString(16).toUpperCase().padStart(4, '0')
  const uids: number[] = []
  let read = false
  for (const table of ['tcp', 'tcp6'] as const) {
    let text: string
    try {
      text = fs.readFileSync(`${procNet}/${table}`, 'utf8')
      read = true
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      const [address, linePort] = (fields[1] ?? '').split(':')
      if (fields[3] !== LISTEN || linePort !== portHex || address === undefined || !want[table].includes(address)) continue
      const uid = Number(fields[7])
      if (Number.isInteger(uid)) uids.push(uid)
    }
  }
  return read ? uids : undefined
}
