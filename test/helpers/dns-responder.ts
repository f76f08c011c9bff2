import dgram from 'node:dgram'
import net from 'node:net'

/**
 * A tiny authoritative DNS server on a loopback UDP port, for names the test controls: A and
 * AAAA answers from `records` (changeable while it runs), NXDOMAIN for other names, an empty
 * answer (NODATA) for a known name without records of the asked type. Enough for c-ares.
 */
export class DnsResponder {
  readonly records = new Map<string, string[]>()
  queries = 0
  private constructor (private readonly socket: dgram.Socket, readonly port: number) {}

  static async start (): Promise<DnsResponder> {
    const socket = dgram.createSocket('udp4')
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
    const responder = new DnsResponder(socket, socket.address().port)
    socket.on('message', (query, rinfo) => {
      const answer = responder.answer(query)
      if (answer !== undefined) socket.send(answer, rinfo.port, rinfo.address)
    })
    return responder
  }

  get server (): string { return `127.0.0.1:${this.port}` }

  async close (): Promise<void> { await new Promise<void>((resolve) => this.socket.close(() => resolve())) }

  private answer (query: Buffer): Buffer | undefined {
    if (query.length < 12 || query.readUInt16BE(4) !== 1) return undefined
    this.queries++
    let at = 12
    const labels: string[] = []
    while (at < query.length && query[at] !== 0) {
      const length = query[at] as number
      labels.push(query.subarray(at + 1, at + 1 + length).toString('ascii'))
      at += 1 + length
    }
    const questionEnd = at + 5
    if (questionEnd > query.length) return undefined
    const type = query.readUInt16BE(at + 1)
    const name = labels.join('.').toLowerCase()
    const addresses = this.records.get(name)
    const wanted = (addresses ?? []).filter((a) => type === 1 ? net.isIPv4(a) : type === 28 ? net.isIPv6(a) : false)
    const header = Buffer.alloc(12)
    header.writeUInt16BE(query.readUInt16BE(0), 0)
    header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | (addresses === undefined ? 3 : 0), 2) // QR, AA, RD copied, NXDOMAIN
    header.writeUInt16BE(1, 4)
    header.writeUInt16BE(wanted.length, 6)
    const records = wanted.map((address) => {
      const rdata = type === 1 ? Buffer.from(address.split('.').map(Number)) : ipv6Bytes(address)
      const rr = Buffer.alloc(12)
      rr.writeUInt16BE(0xc00c, 0) // the name: a pointer to the question's
      rr.writeUInt16BE(type, 2)
      rr.writeUInt16BE(1, 4) // IN
      rr.writeUInt32BE(1, 6) // TTL 1 s
      rr.writeUInt16BE(rdata.length, 10)
      return Buffer.concat([rr, rdata])
    })
    return Buffer.concat([header, query.subarray(12, questionEnd), ...records])
  }
}

function ipv6Bytes (address: string): Buffer {
  const [head = '', tail = ''] = address.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === '' ? [] : tail.split(':')
  const groups = address.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g as string, 16), i * 2))
  return out
}
