import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { LabError } from '../src/errors.js'
import { which } from '../src/lab/processes.js'

/**
 * What the instruction-counting suites (sync-cost, handshake-cost) share: valgrind, whose
 * callgrind counts the instructions a process executes, and running the programs around it.
 */
export function valgrindAvailable (): boolean { return which('valgrind') !== undefined }

const execFileAsync = promisify(execFile)

/** Run a program to its end; a failure is a LabError naming `what`, with the end of its stderr. */
export async function runProgram (file: string, args: string[], what: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileAsync(file, args, { maxBuffer: 64 * 1024 * 1024 })
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? (err as Error).message)
    throw new LabError(`${what} failed: ${stderr.trim().split('\n').slice(-5).join('\n')}`)
  }
}

/** `valgrind --version`, for the report. */
export async function valgrindVersion (): Promise<string> {
  return (await runProgram('valgrind', ['--version'], 'valgrind --version')).stdout.trim()
}
