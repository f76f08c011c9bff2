import type { BatchFormat } from './codecs.js'

/**
 * Gathers sealed New/Del packets into datagrams. A datagram leaves when the next packet would
 * not fit (the format's limit, 1400 bytes for v2: never more) or at the end of the current
 * event-loop turn (setImmediate), whichever comes first. So an update waits at most for the
 * rest of the turn, typically tens of microseconds; under load one turn handles many updates
 * (the workers' IPC batches) and they share datagrams, which is what lets a node absorb
 * 100k updates/s. A lone packet leaves as itself, not framed.
 */
export class DatagramBatcher {
  private packets: Buffer[] = []
  private bytes = 0
  private scheduled = false

  constructor (
    private readonly format: BatchFormat,
    /** Sends one datagram holding `updates` packets. */
    private readonly send: (datagram: Buffer, updates: number) => void
  ) {}

  add (packet: Buffer): void {
    const grown = this.bytes + this.format.recordBytes + packet.length
    if (this.packets.length > 0 && (grown > this.format.maxBytes || this.packets.length >= this.format.maxPackets)) this.flush()
    if (this.packets.length === 0) this.bytes = this.format.headerBytes
    this.packets.push(packet)
    this.bytes += this.format.recordBytes + packet.length
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(() => {
        this.scheduled = false
        this.flush()
      })
    }
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
