import { Command } from 'commander'
import { parseHostPort } from '../config/host-port.js'
import { startDemoBackend } from '../demo/demo-backend.js'
import { UsageError } from '../errors.js'
import { tcpListenError } from '../node/listen-check.js'

/** `tlsfleet demo-backend`: the built-in demo HTTP backend on its own (used by the lab). */
export function demoBackendCommand (): Command {
  return new Command('demo-backend')
    .description('run the built-in demo HTTP backend (accepts PROXY protocol v1/v2)')
    .option('--listen <HOST:PORT>', 'address to listen on', '127.0.0.1:8080')
    .option('--name <NAME>', 'name it reports in its answers', 'demo')
    .action(async (opts: { listen: string; name: string }) => {
      const listen = parseHostPort(opts.listen)
      if (typeof listen === 'string') throw new UsageError(`--listen: ${JSON.stringify(opts.listen)}: ${listen}`)
      const backend = await startDemoBackend(listen, opts.name).catch((err: unknown) => { throw tcpListenError('--listen', listen, err) })
      process.stdout.write(`demo backend "${opts.name}" listening on ${listen.host}:${backend.address.port}\n`)
      const stop = (): void => { void backend.close().then(() => process.exit(0)) }
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
    })
}

