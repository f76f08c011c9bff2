import { Command } from 'commander'
import { ConfigError } from '../config/load.js'
import { ConfigProblem } from '../node/primary.js'
import { FarmSecretError } from '../sync/farm-secret.js'
import { CertificateError } from '../tls/certificates.js'
import { demoBackendCommand, UsageError } from './backend-command.js'
import { nodeCommand } from './node-command.js'
import { stateCommand } from './state-commands.js'
import { statusCommand } from './status-command.js'

// SO_REUSEPORT listeners (Node >= 22.12) and undici 8 (>= 22.19) set the floor.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`tlsfleet: Node.js ${process.versions.node} is not supported; use Node.js 22 (>= 22.19) or 24 LTS\n`)
  process.exit(2)
}

const program = new Command('tlsfleet')
  .description('TLS accelerator farm behind HAProxy: shared sessions, farm-wide ticket keys, an HAProxy agent')
  .version('0.1.0')
  .showHelpAfterError()
program.addCommand(nodeCommand(), { isDefault: true })
program.addCommand(demoBackendCommand())
program.addCommand(statusCommand())
for (const state of ['drain', 'ready', 'maint'] as const) program.addCommand(stateCommand(state))
program.addCommand((await import('./lab-command.js')).labCommand())
program.addCommand((await import('./bench-command.js')).benchCommand())

try {
  await program.parseAsync(process.argv)
} catch (err) {
  if (err instanceof ConfigError || err instanceof CertificateError || err instanceof UsageError ||
    err instanceof FarmSecretError || err instanceof ConfigProblem) {
    process.stderr.write(`tlsfleet: ${err.message}\n`)
    process.exit(2)
  }
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err)
  process.stderr.write(`tlsfleet: ${message}\n`)
  process.exit(1)
}
