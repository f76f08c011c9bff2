/**
 * One round of report requests to the workers (the load sampler's each second, a /metrics
 * scrape). It ends when every worker asked has answered or exited, or when the primary stops
 * waiting; it then hands on the reports of the workers still alive.
 *
 * A worker that answered and then died before the round ended is left out: its counters are
 * retired from its last report when it exits (metrics and totals never drop), so its report in
 * the round too would count them twice.
 */
export class ReportRound<Report> {
  private readonly remaining: Set<number>
  private readonly reports = new Map<number, Report>()
  private ended = false

  /**
   * `workers`: the ids asked; `onEnd` is called once, with the reports in the order they came
   * and the ids of the workers that neither answered nor exited (the hang watch counts them).
   */
  constructor (workers: Iterable<number>, private readonly onEnd: (reports: Report[], unanswered: number[]) => void) {
    this.remaining = new Set(workers)
    if (this.remaining.size === 0) this.end()
  }

  /** A worker answered; a worker not asked, or asked and already counted, is ignored. */
  answered (worker: number, report: Report): void {
    if (this.ended || !this.remaining.delete(worker)) return
    this.reports.set(worker, report)
    if (this.remaining.size === 0) this.end()
  }

  /** A worker exited: nothing more to wait for from it, and what it sent is dropped. */
  exited (worker: number): void {
    if (this.ended) return
    this.reports.delete(worker)
    if (this.remaining.delete(worker) && this.remaining.size === 0) this.end()
  }

  /** Stop waiting: the round ends with what has come. */
  end (): void {
    if (this.ended) return
    this.ended = true
    this.onEnd([...this.reports.values()], [...this.remaining])
  }
}
