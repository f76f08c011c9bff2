import type { BatchFormat } from './codecs.js'

/**
 * Gathers sealed New/Del packets into datagrams. The first packet of an event-loop turn leaves at
 * once, as itself (an idle node adds no delay, and a new session races the client that may
 * reconnect to a peer right away). Packets that follow it in the same turn are gathered: a
 * datagram leaves when the next packet would not fit (the format's limit, 1400 bytes for v2:
 * never more) or at the end of the turn (setImmediate), whichever comes first. So a packet
 * waits at most for the rest of the turn, typically tens of microseconds; under load one turn
 * handles many updates (the workers' IPC batches) and they share datagrams, which is what lets
 * a node absorb 100k updates/s.
 */
export class DatagramBatcher {
  private packets: Buffer[] = []
  private bytes = 0
  /** A turn is under way: a packet was sent or gathered, and a flush is scheduled at its end. */
  private inTurn = false

  constructor (
    private readonly format: BatchFormat,
    /** Sends one datagram holding `updates` packets. */
    private readonly send: (datagram: Buffer, updates: number) => void
  ) {}

  add (packet: Buffer): void {
    if (!this.inTurn) {
      this.inTurn = true
      setImmediate(() => {
        this.inTurn = false
        this.flush()
      })
      this.send(packet, 1)
      return
    }
    const grown = this.bytes + this.format.recordBytes + packet.length
    if (this.packets.length > 0 && (grown > this.format.maxBytes || this.packets.length >= this.format.maxPackets)) this.flush()
    if (this.packets.length === 0) this.bytes = this.format.headerBytes
    this.packets.push(packet)
    this.bytes += this.format.recordBytes + packet.length
  }

  /** Sends what is gathered now. */
  flush (): void {
    const packets = this.packets
    if (packets.length === 0) return
    this.packets = []
    this.bytes = 0
    this.send(packets.length === 1 ? packets[0] as Buffer : this.format.frame(packets), packets.length)
  }
}
