import type { ChildProcess } from 'node:child_process'
import type { Readable } from 'node:stream'
import { LabError } from '../errors.js'
import { onLines } from '../util/lines.js'
import { stderrTail, stopChild } from './processes.js'

/**
 * Waits on the lab's and the bench's children (a line they print, their exit), each bounded in
 * time and each ending at once when the child exits or cannot be started: a promise that only
 * listens for a line would wait forever for a child that died first (seen once with the
 * handshake-cost client). A failed wait stops the child (its group) before it rejects, so the
 * caller has nothing left to clean up, and its LabError names `what`, the exit code or signal
 * and the end of the child's stderr.
 */

/**
 * "exited with code 1", "was killed by SIGKILL" or "could not be started: ...", then `before`
 * if given, then the end of the child's stderr (spawnChild keeps it).
 */
export function describeExit (child: ChildProcess, opts: { before?: string; spawnError?: Error } = {}): string {
  const how = opts.spawnError !== undefined
    ? `could not be started: ${opts.spawnError.message}`
    : child.signalCode !== null ? `was killed by ${child.signalCode}` : `exited with code ${String(child.exitCode)}`
  const tail = stderrTail(child)
  return `${how}${opts.before !== undefined ? ` before ${opts.before}` : ''}${tail === '' ? ' (no stderr)' : `; its stderr ended with:\n${tail}`}`
}

/**
 * Resolves with the first line of the child's stdout for which `match` is true. Rejects (after
 * stopping the child) when the child exits or fails to start first, or after `timeoutMs`.
 * `what` names the child in the error ("handshake-cost suite: the node full-1.2 client").
 */
export async function waitForLine (child: ChildProcess, match: (line: string) => boolean, opts: { what: string; waitingFor: string; timeoutMs: number }): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    let settled = false
    const finish = (fn: () => void): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.removeListener('exit', onExit)
      child.removeListener('error', onError)
      fn()
    }
    const fail = (message: string): void => finish(() => { stopChild(child, 2000).then(() => reject(new LabError(message)), reject) })
    // 'exit' can come before the child's last stdout data is read (the line may still be in the
    // pipe): the verdict waits for 'close', or half a second should a grandchild hold the pipe.
    const onExit = (): void => {
      const verdict = (): void => fail(`${opts.what} ${describeExit(child, { before: opts.waitingFor })}`)
      if (child.stdout === null || child.stdout.closed) { verdict(); return }
      const grace = setTimeout(verdict, 500)
      child.stdout.once('close', () => { clearTimeout(grace); setImmediate(verdict) })
    }
    const onError = (err: Error): void => fail(`${opts.what} ${describeExit(child, { spawnError: err })}`)
    const timer = setTimeout(() => fail(`${opts.what} did not reach ${opts.waitingFor} within ${opts.timeoutMs / 1000} s (stopped)${stderrTail(child) === '' ? '' : `; its stderr ended with:\n${stderrTail(child)}`}`), opts.timeoutMs)
    if (child.exitCode !== null || child.signalCode !== null) { onExit(); return }
    child.once('exit', onExit)
    child.once('error', onError)
    onLines(child.stdout, (line) => { if (!settled && match(line)) finish(() => resolve(line)) })
  })
}

/**
 * Resolves with the child's exit code once it has exited and its output is read ('close').
 * Rejects (after stopping it) when it cannot be started or is still running after `timeoutMs`.
 */
export async function waitForClose (child: ChildProcess, opts: { what: string; timeoutMs: number }): Promise<number | null> {
  return await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.removeListener('close', onClose)
      stopChild(child, 2000).then(() => reject(new LabError(`${opts.what} did not finish within ${opts.timeoutMs / 1000} s (stopped)`)), reject)
    }, opts.timeoutMs)
    const onClose = (code: number | null): void => { clearTimeout(timer); resolve(code) }
    child.once('error', (err) => { clearTimeout(timer); child.removeListener('close', onClose); reject(new LabError(`${opts.what} ${describeExit(child, { spawnError: err })}`)) })
    // A child that has exited with its pipes closed emitted 'close' already; its exit code is final.
    const closed = (stream: Readable | null): boolean => stream === null || stream.closed
    if ((child.exitCode !== null || child.signalCode !== null) && closed(child.stdout) && closed(child.stderr)) { onClose(child.exitCode); return }
    child.once('close', onClose)
  })
}
