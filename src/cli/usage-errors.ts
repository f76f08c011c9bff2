import { CommanderError, type Command } from 'commander'
import { UsageError } from '../errors.js'

/** Commander's exits that are not refusals: help or the version was printed as asked. */
const PRINTED = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version'])

/**
 * Commander prints its usage errors itself (`error: unknown option ...`) and exits 1. Here
 * every command throws them instead, as UsageErrors naming the command's help, so they are
 * reported like any refusal (one line with TLSFLEET_ERR_USAGE, exit 2). Applied down the
 * tree: addCommand does not pass these settings on to subcommands. `name` is how the operator
 * invokes `command` (`tlsfleet bench` parses its arguments with a command of its own).
 */
export function throwUsageErrors (command: Command, name = command.name()): void {
  command.configureOutput({ outputError: () => {} })
  command.exitOverride((err) => {
    if (PRINTED.has(err.code)) throw err
    // The default command (node) given a word it does not take, without being named: that word
    // was meant as a command (`tlsfleet -c node.yaml bogus`).
    const parent = command.parent
    const [word] = command.args
    if (err.code === 'commander.excessArguments' && parent !== null && word !== undefined && !process.argv.slice(2).includes(command.name())) {
      const unknown = unknownCommand(parent, [word])
      if (unknown !== undefined) throw unknown
    }
    throw new UsageError(`${oneLine(err.message)}; see ${name} --help`)
  })
  for (const sub of command.commands) throwUsageErrors(sub, `${name} ${sub.name()}`)
}

/**
 * A first word that names no command. `node` is the default command, so commander would hand
 * `tlsfleet bogus` to it as an argument ("too many arguments for 'node'") and `tlsfleet help
 * bogus` prints the general help with exit 1; either way the operator is not told that the
 * command does not exist.
 */
export function unknownCommand (program: Command, args: string[]): UsageError | undefined {
  const names = program.commands.flatMap((c) => [c.name(), ...c.aliases()])
  const [first, second] = args
  const word = first === 'help' ? second : first
  if (word === undefined || word.startsWith('-') || names.includes(word)) return undefined
  return new UsageError(`unknown command '${word}' (commands: ${program.commands.map((c) => c.name()).join(', ')}); see ${program.name()} --help`)
}

/** Help or version output that commander already printed: exit with its status, say nothing more. */
export function isPrintedByCommander (err: unknown): err is CommanderError {
  return err instanceof CommanderError && PRINTED.has(err.code)
}

/** Commander's message without its `error: ` prefix or closing period; a "Did you mean ...?" hint stays on the line. */
function oneLine (message: string): string {
  return message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').replace(/\.$/, '')
}
