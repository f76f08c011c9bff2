import type { HaproxyRuntimeApi } from './runtime-api.js'
import { haproxyProcess, type HaproxyInfo } from './show-info.js'

/** How often the front HAProxy is asked who it is: one `show info` per node, a cheap command. */
export const RESTART_WATCH_INTERVAL_MS = 3000

export interface RestartWatchOptions {
  intervalMs?: number
  /** A new HAProxy process answers (another pid or start time than the last answer). Must not throw (the coordinator returns its failures). */
  onRestart: (info: HaproxyInfo) => Promise<void>
  /** Each read, as the node counts Runtime API commands; `err` when it failed. */
  onRead: (err?: Error) => void
}

/**
 * Notices that the front HAProxy (--haproxy-socket) was restarted: a new process keeps none of
 * the state the node set through the Runtime API (drain, maint), and without agent-check
 * nothing else would tell it again. Reads `show info` every few seconds, one read at a time
 * (the next is timed from the end of the last, each bounded by the client's timeout). The
 * first read is the baseline (the node applies its state itself at start); after one that
 * failed, the first answer counts as new, as the state applied then may not have reached it.
 */
export class HaproxyRestartWatch {
  /** The process of the last answer; undefined until one (or after a failed baseline). */
  private process: string | undefined
  private baselined = false
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor (private readonly api: HaproxyRuntimeApi, private readonly opts: RestartWatchOptions) {}

  /** One read: the baseline when first called, then a restart check. Never throws. */
  async read (): Promise<void> {
    let info: HaproxyInfo
    try {
      info = await this.api.showInfo()
    } catch (err) {
      this.baselined = true
      this.opts.onRead(err as Error)
      return
    }
    this.opts.onRead()
    const key = haproxyProcess(info)
    const changed = this.baselined && key !== this.process
    this.process = key
    this.baselined = true
    if (changed && !this.stopped) await this.opts.onRestart(info)
  }

  /** Reads on a timer from now on (after the baseline read). */
  start (): void {
    if (this.stopped) return
    this.timer = setTimeout(() => { void this.read().finally(() => this.start()) }, this.opts.intervalMs ?? RESTART_WATCH_INTERVAL_MS)
    this.timer.unref()
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }
}
