import { Command } from 'commander'
import { TlsfleetError } from '../errors.js'
import { demoBackendCommand } from './backend-command.js'
import { haproxyKeysCommand } from './haproxy-keys-command.js'
import { nodeCommand } from './node-command.js'
import { stateCommand } from './state-commands.js'
import { statusCommand } from './status-command.js'
import { isPrintedByCommander, throwUsageErrors, unknownCommand } from './usage-errors.js'

// SO_REUSEPORT listeners (Node >= 22.12) and undici 8 (>= 22.19) set the floor.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`tlsfleet: Node.js ${process.versions.node} is not supported; use Node.js 22 (>= 22.19) or 24 LTS\n`)
  process.exit(2)
}

const program = new Command('tlsfleet')
  .description('TLS accelerator farm behind HAProxy: shared sessions, farm-wide ticket keys, an HAProxy agent')
  .version('0.1.0')
program.addCommand(nodeCommand(), { isDefault: true })
program.addCommand(demoBackendCommand())
program.addCommand(statusCommand())
program.addCommand(haproxyKeysCommand())
for (const state of ['drain', 'ready', 'maint'] as const) program.addCommand(stateCommand(state))
program.addCommand((await import('./lab-command.js')).labCommand())
program.addCommand((await import('./bench-command.js')).benchCommand())
throwUsageErrors(program)

// bin/tlsfleet.js's handlers for signals that come while the CLI loads: the command takes
// over now (a signal from now on goes to the command's handlers, or gets its default action).
const releaseEarlySignals = (globalThis as Record<symbol, unknown>)[Symbol.for('tlsfleet.releaseEarlySignals')]
if (typeof releaseEarlySignals === 'function') releaseEarlySignals()

try {
  const unknown = unknownCommand(program, process.argv.slice(2))
  if (unknown !== undefined) throw unknown
  await program.parseAsync(process.argv)
} catch (err) {
  if (isPrintedByCommander(err)) process.exit(err.exitCode)
  process.stderr.write(`tlsfleet: ${describeFailure(err)}\n`)
  process.exit(err instanceof TlsfleetError ? err.exitCode : 1)
}

/**
 * One line for any failure: the message and, for tlsfleet's own errors, their code. The stack
 * only when asked for (`--log-level debug|trace`, or TLSFLEET_LOG_LEVEL), since an operator
 * fixing a busy port or a bad option needs the sentence, not the call chain.
 */
function describeFailure (err: unknown): string {
  const verbose = wantsStack(process.argv, process.env)
  if (err instanceof TlsfleetError) return `${err.message} (${err.code})${verbose && err.stack !== undefined ? `\n${err.stack}` : ''}`
  const message = err instanceof Error ? err.message : String(err)
  if (verbose && err instanceof Error && err.stack !== undefined) return err.stack
  // Not every command takes --log-level; the variable works for all of them.
  return `${message} (an unexpected error; TLSFLEET_LOG_LEVEL=debug shows its stack)`
}

function wantsStack (argv: string[], env: NodeJS.ProcessEnv): boolean {
  const i = argv.findIndex((a) => a === '--log-level' || a.startsWith('--log-level='))
  const level = i < 0 ? env.TLSFLEET_LOG_LEVEL : argv[i]?.includes('=') === true ? argv[i]?.split('=')[1] : argv[i + 1]
  return level === 'debug' || level === 'trace'
}
