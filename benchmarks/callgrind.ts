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

/**
 * Run a program to its end; a failure is a LabError naming `what`, with its exit code and the
 * end of its stderr. Bounded by `timeoutMs` (SIGKILL then: a stuck valgrind run would
 * otherwise hold the bench forever); the default fits the slowest run under callgrind.
 */
export async function runProgram (file: string, args: string[], what: string, timeoutMs = 30 * 60_000): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileAsync(file, args, { maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs, killSignal: 'SIGKILL' })
  } catch (err) {
    const e = err as { stderr?: unknown; code?: unknown; signal?: unknown; killed?: boolean }
    const stderr = String(e.stderr ?? (err as Error).message).trim().split('\n').slice(-5).join('\n')
    const how = e.killed === true ? `did not finish within ${Math.round(timeoutMs / 1000)} s (killed)` : `failed (${typeof e.code === 'number' ? `exit code ${e.code}` : String(e.code ?? e.signal)})`
    throw new LabError(`${what} ${how}: ${stderr}`)
  }
}

/** `valgrind --version`, for the report. */
export async function valgrindVersion (): Promise<string> {
  return (await runProgram('valgrind', ['--version'], 'valgrind --version')).stdout.trim()
}

/** What one callgrind dump file counted: all instructions, and those spent compiling JavaScript. */
export interface DumpCount {
  total: number
  /** Inclusive cost of calls into V8's `Compiler::` entry points (bytecode, Sparkplug, Maglev, TurboFan) from outside them. */
  compile: number
}

/** V8's compile entry points (`v8::internal::Compiler::Compile`, `::CompileOptimized`, ...), not the `compiler::` namespace below them. */
const COMPILE_ENTRY = /v8::internal::Compiler::/

/**
 * Reads a callgrind dump (format: valgrind's callgrind-format docs). Function names are
 * compressed (`fn=(12) name` once, `fn=(12)` after; `cfn=` shares the table); the cost line
 * after a `calls=` line is the inclusive cost of that call. A call from a function outside the
 * compile entry points into one of them counts whole as compilation: a warm-up effect, which a
 * counted window after warm-up still catches in bursts (V8 re-optimising as its feedback
 * settles), and which a server that has run for a while no longer pays.
 */
export function readDump (text: string): DumpCount {
  const summary = /^summary: (\d+)$/m.exec(text)
  const names = new Map<string, string>()
  const nameOf = (ref: string): string => {
    const m = /^\((\d+)\)(?: (.*))?$/.exec(ref)
    if (m === null) return ref
    const [, id = '', name] = m
    if (name !== undefined) names.set(id, name)
    return names.get(id) ?? ''
  }
  let inCompiler = false
  let callIntoCompiler = false
  let afterCalls = false
  let compile = 0
  for (const line of text.split('\n')) {
    if (line.startsWith('fn=')) {
      inCompiler = COMPILE_ENTRY.test(nameOf(line.slice(3)))
      afterCalls = false
    } else if (line.startsWith('cfn=')) {
      // nameOf first, always: a name is defined where it first appears.
      const callee = nameOf(line.slice(4))
      callIntoCompiler = !inCompiler && COMPILE_ENTRY.test(callee)
    } else if (line.startsWith('calls=')) {
      afterCalls = true
    } else if (afterCalls && /^[\d+\-*]/.test(line)) {
      afterCalls = false
      if (callIntoCompiler) compile += Number(line.split(' ')[1] ?? 0)
    }
  }
  return { total: summary !== null ? Number(summary[1]) : 0, compile }
}
