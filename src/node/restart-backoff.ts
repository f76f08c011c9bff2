/**
 * When a dead worker's replacement is forked. The first deaths are replaced at once (a worker
 * killed from outside, a crash now and then); deaths that keep coming are replaced after a
 * growing delay, capped, so a node whose workers die right after start (a bad certificate for
 * this OpenSSL, a port taken, a bug on the first connection) does not fork in a tight loop.
 *
 * The level only falls back once no worker has died for `quietResetMs`, as supervisors do
 * (systemd's StartLimitIntervalSec, runit's and s6's back-off): counting deaths in a sliding
 * window instead made the delays collapse, since the longer the delay the fewer deaths fit in
 * the window (observed: 500, 2000, 8000, 10000, then 1000, 1000, 2000 ms), and the node
 * flapped between up and down every few seconds.
 *
 * Pure: the caller gives the time; the pool forks and keeps the timers.
 */

export interface BackoffPolicy {
  /** Deaths in a row replaced at once (the pool gives its size: losing every worker at once is not yet a loop). */
  freeRestarts: number
  /** The first delayed restart waits this long; each next one twice the last. */
  baseMs: number
  /** No restart waits longer. */
  capMs: number
  /** This long without a death and the level starts again from 0; also the window `recent` counts over. */
  quietResetMs: number
}

export const DEFAULT_BACKOFF: Omit<BackoffPolicy, 'freeRestarts'> = Object.freeze({ baseMs: 500, capMs: 10_000, quietResetMs: 60_000 })

/** What /v1/state shows of the restarts (`workers.restarts`). */
export interface WorkerRestarts {
  /** Worker deaths in the last `windowSeconds`. */
  recent: number
  windowSeconds: number
  /** Replacements are being held back: workers keep dying and have not stayed up for `windowSeconds`. */
  crashLoop: boolean
  /** The delay the last replacement was given, in ms (0: at once). */
  delayMs: number
  /** When the next replacement is forked, if one is waiting. */
  nextRestartInMs?: number
}

/** Pure: the delay before the replacement for the `level`-th death in a row. */
export function restartDelayMs (level: number, policy: BackoffPolicy): number {
  if (level <= policy.freeRestarts) return 0
  return Math.min(policy.capMs, policy.baseMs * 2 ** (level - policy.freeRestarts - 1))
}

export class RestartBackoff {
  private level = 0
  private lastDeathAt: number | undefined
  private lastDelay = 0
  /** Death times within the last quietResetMs (for `recent`). */
  private readonly deaths: number[] = []

  constructor (private readonly policy: BackoffPolicy) {
    for (const [name, value] of Object.entries(policy)) {
      if (!Number.isFinite(value) || value < 0) throw new Error(`restart back-off ${name} must be a number >= 0, got ${String(value)}`)
    }
  }

  /** A worker died at `now` (ms): how long to wait before forking its replacement. */
  died (now: number): number {
    if (this.lastDeathAt !== undefined && now - this.lastDeathAt >= this.policy.quietResetMs) this.level = 0
    this.lastDeathAt = now
    this.level++
    this.deaths.push(now)
    this.prune(now)
    this.lastDelay = restartDelayMs(this.level, this.policy)
    return this.lastDelay
  }

  /** Whether replacements are held back as of `now`: deaths beyond the free ones, none quiet for long enough since. */
  inCrashLoop (now: number): boolean {
    return this.level > this.policy.freeRestarts && this.lastDeathAt !== undefined && now - this.lastDeathAt < this.policy.quietResetMs
  }

  /** For /v1/state; `nextRestartAt`: when the earliest waiting replacement is due, if any. */
  status (now: number, nextRestartAt?: number): WorkerRestarts {
    this.prune(now)
    const loop = this.inCrashLoop(now)
    return {
      recent: this.deaths.length,
      windowSeconds: this.policy.quietResetMs / 1000,
      crashLoop: loop,
      delayMs: loop ? this.lastDelay : 0,
      ...(nextRestartAt !== undefined ? { nextRestartInMs: Math.max(0, nextRestartAt - now) } : {})
    }
  }

  private prune (now: number): void {
    while (this.deaths.length > 0 && (this.deaths[0] as number) <= now - this.policy.quietResetMs) this.deaths.shift()
  }
}
