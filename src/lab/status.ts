import { sumMetric } from '../metrics/prometheus-text.js'
import type { LabFarm } from './farm.js'

/**
 * The lab's live status: HAProxy's view of each node (UP, DOWN, DRAIN, weight) and the node's
 * own handshake counters, as rates since the previous call.
 */
export class StatusLine {
  private last = new Map<string, { full: number; resumed: number; at: number }>()

  constructor (private readonly farm: LabFarm) {}

  async render (): Promise<string> {
    const rows = await this.farm.serverStats().catch(() => [])
    const parts: string[] = []
    for (const node of this.farm.nodes) {
      const row = rows.find((r) => r.svname === node.name)
      const status = row === undefined ? '?' : `${row.status}${row.weight !== undefined && row.weight !== 100 ? ` w${row.weight}` : ''}`
      let rate = ''
      if (node.state === 'up') {
        try {
          const text = await node.metricsText(800)
          const now = { full: sumMetric(text, 'tlsfleet_handshakes_total', { result: 'full' }), resumed: sumMetric(text, 'tlsfleet_handshakes_total', { result: 'resumed' }), at: Date.now() }
          const prev = this.last.get(node.name)
          this.last.set(node.name, now)
          if (prev !== undefined && now.at > prev.at && now.full >= prev.full) {
            const s = (now.at - prev.at) / 1000
            rate = ` ${((now.full - prev.full) / s).toFixed(0)} full/s ${((now.resumed - prev.resumed) / s).toFixed(0)} resumed/s`
          }
        } catch { rate = ' (no metrics)' }
      } else {
        this.last.delete(node.name)
      }
      parts.push(`${node.name} ${status}${rate}`)
    }
    return parts.join(' | ')
  }
}
