/**
 * Calls `fn` once per complete line of a stream (child process output, a pipe). A line longer
 * than `maxPending` characters without a newline is cut to its tail, so a runaway writer
 * cannot grow memory without bound.
 */
export function onLines (stream: NodeJS.ReadableStream | null | undefined, fn: (line: string) => void, maxPending = 65536): void {
  if (stream === null || stream === undefined) return
  let pending = ''
  stream.on('data', (chunk: Buffer | string) => {
    pending += chunk.toString()
    let nl: number
    while ((nl = pending.indexOf('\n')) >= 0) {
      fn(pending.slice(0, nl))
      pending = pending.slice(nl + 1)
    }
    if (pending.length > maxPending) pending = pending.slice(-maxPending)
  })
}
