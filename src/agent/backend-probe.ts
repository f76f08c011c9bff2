import net from 'node:net'
import type { HostPort } from '../config/host-port.js'
import type { ConnectLookup } from '../proxy/backend-lookup.js'

/** One TCP connect to the backend, closed at once; resolves whether it was accepted in time. */
export async function probeTcp (target: HostPort, timeoutMs: number, lookup?: ConnectLookup): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect({ host: target.host, port: target.port, ...(lookup !== undefined ? { lookup } : {}) })
    const done = (ok: boolean): void => { clearTimeout(timer); socket.destroy(); resolve(ok) }
    const timer = setTimeout(() => done(false), timeoutMs)
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/**
 * Periodic backend probe for the agent: a cheap TCP connect every `intervalMs`. The backend
 * counts as unreachable after `fall` failures in a row and as reachable again after one
 * success, so one lost SYN does not take the node out of HAProxy.
 */
export class BackendProbe {
  private failures = 0
  private inFlight = false
  private timer: NodeJS.Timeout | undefined
  reachable: boolean | undefined

  /** `lookup`: the backend's name as the workers look it up (--backend-refresh), so the probe sees what they see. */
  constructor (private readonly opts: { target: HostPort; intervalMs: number; fall?: number; lookup?: ConnectLookup; onChange: (reachable: boolean) => void }) {}

  async start (): Promise<void> {
    await this.round()
    this.timer = setInterval(() => { void this.round() }, this.opts.intervalMs)
    this.timer.unref()
  }

  stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
  }

  private async round (): Promise<void> {
    if (this.inFlight) return
    this.inFlight = true
    const ok = await probeTcp(this.opts.target, Math.min(1000, this.opts.intervalMs), this.opts.lookup).finally(() => { this.inFlight = false })
    this.failures = ok ? 0 : this.failures + 1
    const reachable = ok || this.failures < (this.opts.fall ?? 2)
    // A first probe that failed proves nothing yet either way: not reported as reachable (the
    // start said "backend reachable" for a backend that was down), decided by the next ones.
    if (this.reachable === undefined && !ok && reachable) return
    if (reachable !== this.reachable) {
      this.reachable = reachable
      this.opts.onChange(reachable)
    }
  }
}
