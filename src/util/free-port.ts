import crypto from 'node:crypto'
import dgram from 'node:dgram'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

/**
 * Ports for the listeners the lab, the bench and the tests start before the process that binds
 * them exists. Two ways such a port gets stolen between the check and the bind, both seen here:
 * the kernel hands a just-released ephemeral port to an outgoing connection (every client
 * connection takes one), and two processes (parallel test files) check the same port at once.
 * So ports come from below the kernel's ephemeral range (net.ipv4.ip_local_port_range), where no
 * connect() ever lands, and each one is reserved across processes by a file created with O_EXCL
 * in the temp dir. A reservation lapses after RESERVATION_MS (the listener is up long before).
 */
const RESERVATIONS = path.join(os.tmpdir(), 'tlsfleet-ports')
const RESERVATION_MS = 15 * 60_000
const LOWEST_PORT = 10_000
const ATTEMPTS = 200

/**
 * A TCP port free on `host` now and reserved for this caller. Ports in `taken` (what this
 * caller already handed out, not yet bound) are skipped, and the new one is added.
 */
export async function freeTcpPort (host: string, taken?: Set<number>): Promise<number> {
  return await freePort(host, taken, false)
}

/** A port free on `host` for both TCP and UDP (the sync uses UDP). */
export async function freeTcpUdpPort (host: string, taken?: Set<number>): Promise<number> {
  return await freePort(host, taken, true)
}

async function freePort (host: string, taken: Set<number> | undefined, udpToo: boolean): Promise<number> {
  const range = unassignedRange()
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const port = range !== undefined ? crypto.randomInt(range.low, range.high + 1) : await bindZero(host)
    if (taken?.has(port) === true || !reserve(port)) continue
    if (range !== undefined && !(await bindable(host, port))) continue
    if (udpToo && !(await udpBindable(host, port))) continue
    taken?.add(port)
    return port
  }
  throw new Error(`no free TCP${udpToo ? '/UDP' : ''} port on ${host} after ${ATTEMPTS} attempts`)
}

/** Ports below the ephemeral range, or undefined when that range leaves too few (then bind 0). */
function unassignedRange (): { low: number; high: number } | undefined {
  let ephemeralLow = 32768
  try {
    ephemeralLow = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
  } catch { /* not Linux: assume the common default */ }
  const high = ephemeralLow - 1
  return high - LOWEST_PORT >= 2000 ? { low: LOWEST_PORT, high } : undefined
}

/** Claim `port` for this process unless another claimed it less than RESERVATION_MS ago. */
function reserve (port: number): boolean {
  const file = path.join(RESERVATIONS, String(port))
  try {
    fs.mkdirSync(RESERVATIONS, { recursive: true, mode: 0o1777 })
    fs.closeSync(fs.openSync(file, 'wx'))
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return true // no reservations possible here: rely on the bind check
    try {
      if (Date.now() - fs.statSync(file).mtimeMs < RESERVATION_MS) return false
      fs.utimesSync(file, new Date(), new Date()) // lapsed: take it over
      return true
    } catch { return false }
  }
}

async function bindable (host: string, port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = net.createServer()
    server.unref()
    server.once('error', () => resolve(false))
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)))
  })
}

async function udpBindable (host: string, port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4')
    socket.once('error', () => { socket.close(); resolve(false) })
    socket.bind(port, host, () => socket.close(() => resolve(true)))
  })
}

async function bindZero (host: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen({ host, port: 0 }, () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
}
