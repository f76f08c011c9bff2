/** Report rounds a worker must leave unanswered in a row (asked after its silence was noticed) before it counts as hung. */
export const HANG_ROUNDS = 3

/**
 * Finds workers that stopped answering the primary (--worker-hang-timeout). A worker whose
 * event loop is stuck (an endless loop, a blocking call) keeps its listening socket: the kernel
 * goes on queueing its share of new clients there, who wait for ever, and only SIGKILL ends it.
 * The primary asks every listening worker for a report once a second; a worker is hung when
 * the round in which it first fell silent was asked at least `timeoutMs` ago and it has let
 * `rounds` rounds in a row end without its answer, every round after the first asked after
 * that silence was noticed, and no answer of its own came since the round was asked. That keeps
 * a primary that was itself paused (SIGSTOP, a VM freeze, a long GC) from taking its own pause
 * for the workers': every round in flight during the pause ends unanswered when it resumes
 * (timers run before the answers waiting in the channel are read; the pool judges a round once
 * they have been, and rounds in flight together count as one). Pure: the pool feeds it and kills.
 */
export class HangWatch {
  /** Workers silent now: when the first unanswered round was asked, when that was noticed, rounds since. */
  private readonly silent = new Map<number, { since: number; noticed: number; rounds: number }>()
  /** Workers already reported hung: never reported twice while they die. */
  private readonly reported = new Set<number>()
  /** When each worker's last answer came. */
  private readonly lastAnswer = new Map<number, number>()

  constructor (private readonly timeoutMs: number, private readonly rounds = HANG_ROUNDS) {
    if (!(timeoutMs > 0)) throw new Error(`hang timeout must be > 0 ms, got ${timeoutMs}`)
  }

  /** Any answer from the worker, even one that came too late for its round: it is alive. */
  answered (worker: number, now: number): void {
    this.silent.delete(worker)
    this.lastAnswer.set(worker, now)
  }

  /** The worker exited: forget it. */
  exited (worker: number): void {
    this.silent.delete(worker)
    this.reported.delete(worker)
    this.lastAnswer.delete(worker)
  }

  /**
   * A round asked at `askedAt` ended at `now` without an answer from `unanswered`. Returns the
   * workers that are hung as of now, each once, with how long they have been silent.
   */
  roundEnded (unanswered: Iterable<number>, askedAt: number, now: number): HungWorker[] {
    const hung: HungWorker[] = []
    for (const worker of unanswered) {
      // Answered since (late for this round): alive.
      if (this.reported.has(worker) || (this.lastAnswer.get(worker) ?? -Infinity) >= askedAt) continue
      let entry = this.silent.get(worker)
      if (entry === undefined) {
        entry = { since: askedAt, noticed: now, rounds: 1 }
        this.silent.set(worker, entry)
      } else if (askedAt >= entry.noticed) {
        entry.rounds++
      }
      if (entry.rounds >= this.rounds && now - entry.since >= this.timeoutMs) {
        this.silent.delete(worker)
        this.reported.add(worker)
        hung.push({ worker, silentMs: now - entry.since })
      }
    }
    return hung
  }
}

export interface HungWorker { worker: number; silentMs: number }
