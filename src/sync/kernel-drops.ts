import fs from 'node:fs'

/**
 * How many datagrams the kernel dropped on this process's UDP sockets bound to `port` because
 * their receive buffer was full: the `drops` column of /proc/net/udp and /proc/net/udp6, for
 * the sockets whose inode is one of this process's file descriptors (several nodes on one host
 * share a multicast port; only ours count). Node exposes neither the socket's fd nor
 * SO_RXQ_OVFL, so this is the reachable figure. Undefined where /proc is not there.
 */
export function kernelDrops (port: number, procRoot = '/proc'): number | undefined {
  let ours: Set<string>
  try {
    ours = socketInodes(`${procRoot}/self/fd`)
  } catch {
    return undefined
  }
  let total: number | undefined
  for (const table of ['net/udp', 'net/udp6']) {
    let text: string
    try { text = fs.readFileSync(`${procRoot}/${table}`, 'utf8') } catch { continue }
    for (const row of parseUdpTable(text)) {
      if (row.localPort === port && ours.has(row.inode)) total = (total ?? 0) + row.drops
    }
  }
  return total
}

export interface UdpRow { localPort: number; inode: string; drops: number }

/** Rows of /proc/net/udp(6): `sl local_address rem_address st tx:rx tr tm retr uid timeout inode ref pointer drops`. */
export function parseUdpTable (text: string): UdpRow[] {
  const rows: UdpRow[] = []
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/)
    if (fields.length < 13) continue
    const local = fields[1] ?? ''
    const port = Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16)
    const drops = Number(fields[fields.length - 1])
    if (!Number.isInteger(port) || !Number.isFinite(drops)) continue
    rows.push({ localPort: port, inode: fields[9] ?? '', drops })
  }
  return rows
}

function socketInodes (fdDir: string): Set<string> {
  const inodes = new Set<string>()
  for (const fd of fs.readdirSync(fdDir)) {
    let target: string
    try { target = fs.readlinkSync(`${fdDir}/${fd}`) } catch { continue } // closed meanwhile
    const match = /^socket:\[(\d+)\]$/.exec(target)
    if (match !== null) inodes.add(match[1] as string)
  }
  return inodes
}
