import dgram from 'node:dgram'

export interface Recorded { packet: Buffer; from: string; at: number }

/**
 * A test-side UDP socket on loopback: records every datagram that reaches it (with its source)
 * and sends what the test gives it. Configured as a node's --sync-peer, it sees what a peer sees.
 */
export class UdpRecorder {
  readonly received: Recorded[] = []
  private constructor (private readonly socket: dgram.Socket) {
    socket.on('message', (packet, rinfo) => this.received.push({ packet, from: `${rinfo.address}:${rinfo.port}`, at: Date.now() }))
  }

  static async bind (host = '127.0.0.1'): Promise<UdpRecorder> {
    const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4')
    await new Promise<void>((resolve) => socket.bind(0, host, resolve))
    return new UdpRecorder(socket)
  }

  get port (): number { return this.socket.address().port }
  get address (): string { return `${this.socket.address().address}:${this.port}` }

  /** Datagrams from `from` (HOST:PORT) so far. */
  from (from: string): Recorded[] { return this.received.filter((r) => r.from === from) }

  async send (packet: Buffer, port: number, host = '127.0.0.1'): Promise<void> {
    await new Promise<void>((resolve, reject) => this.socket.send(packet, port, host, (err) => err === null ? resolve() : reject(err)))
  }

  close (): void { this.socket.close() }
}
