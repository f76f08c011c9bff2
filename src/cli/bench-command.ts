import { Command } from 'commander'
import { throwUsageErrors } from './usage-errors.js'

/**
 * `tlsfleet bench`: the benchmark code lives in benchmarks/ (like undici's) and runs with
 * `npm run bench`; this command loads the same code when it is invoked, so a node that never
 * benchmarks never loads it. Every argument (--help included) goes to the bench command itself.
 */
export function benchCommand (): Command {
  return new Command('bench')
    .description('benchmarks: TLS handshake cost (tlsfleet vs haproxy, hitch, node tls), failover, sync, store, agent, memory, soak (tlsfleet bench --help)')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[options...]')
    .action(async (args: string[]) => {
      let cli: typeof import('../../benchmarks/cli.js')
      try {
        cli = await import('../../benchmarks/cli.js')
      } catch (err) {
        process.stderr.write(`tlsfleet: the benchmarks are not part of this installation (${(err as Error).message}); run them from a clone with npm run bench\n`)
        process.exit(1)
      }
      const bench = cli.benchCommand().name('tlsfleet bench')
      throwUsageErrors(bench, 'tlsfleet bench')
      await bench.parseAsync(['node', 'bench', ...args])
    })
}
