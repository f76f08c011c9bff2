/**
 * Live progress on stderr: one line rewritten in place on a terminal, a line every few
 * seconds otherwise (CI logs).
 */
export class Progress {
  private lastLine = 0
  private readonly tty = process.stderr.isTTY === true
  private dirty = false

  constructor (private readonly enabled = true) {}

  update (text: string): void {
    if (!this.enabled) return
    if (this.tty) {
      process.stderr.write(`\r\x1b[K${text}`)
      this.dirty = true
    } else if (Date.now() - this.lastLine >= 2000) {
      process.stderr.write(`${text}\n`)
      this.lastLine = Date.now()
    }
  }

  /** A permanent line (ends the in-place one first). */
  line (text: string): void {
    if (!this.enabled) return
    if (this.dirty) { process.stderr.write('\r\x1b[K'); this.dirty = false }
    process.stderr.write(`${text}\n`)
    this.lastLine = 0
  }
}
