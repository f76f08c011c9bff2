import { Command } from 'commander'
import { ConfigError } from '../errors.js'
import { loadNodeConfig } from './node-command.js'
import { envName } from '../config/options.js'
import { writeHaproxyKeyFile } from '../haproxy/key-file.js'

/**
 * `tlsfleet haproxy-keys`: write the tls-ticket-keys file a local HAProxy starts from (run it
 * before HAProxy starts or reloads, e.g. ExecStartPre/ExecReload), with the same names and
 * values as `tlsfleet node`. Prints where and which epoch, never a key.
 */
export function haproxyKeysCommand (): Command {
  return new Command('haproxy-keys')
    .description('write the farm\'s ticket key ring (previous, current, next) as an HAProxy tls-ticket-keys file, for HAProxy\'s own start')
    .option('-c, --config <FILE>', `the node's YAML file (tlsfleet node --config): its sync-secret-file and ticket-rotation count, flags and TLSFLEET_* variables win over it as for the node [env TLSFLEET_CONFIG]`)
    .option('--sync-secret-file <FILE>', `farm secret (>= 32 bytes, mode 0600), as given to tlsfleet node; repeatable, the first one counts [env ${envName('sync-secret-file')}]`, (value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .option('--ticket-rotation <S>', `seconds between ticket key rotations, as given to tlsfleet node (default 3600) [env ${envName('ticket-rotation')}]`)
    .requiredOption('--out <KEYFILE>', 'the file to write: the tls-ticket-keys file of the HAProxy bind line (written 0600, 0640 if it was group-readable, replaced atomically)')
    .action((opts: { config?: string; syncSecretFile?: string[]; ticketRotation?: string; out: string }) => {
      // The node's own loader: the same sources, precedence and checks, so the key file cannot
      // follow another rotation than the companion that keeps HAProxy's ring.
      // loadNodeConfig, as the node: its config file named as given (--config or TLSFLEET_CONFIG).
      const config = loadNodeConfig({
        ...(opts.syncSecretFile !== undefined ? { 'sync-secret-file': opts.syncSecretFile } : {}),
        ...(opts.ticketRotation !== undefined ? { 'ticket-rotation': opts.ticketRotation } : {})
      }, opts.config, process.env)
      const secretFiles = config.syncSecretFile
      if (secretFiles.length === 0) throw new ConfigError(['--sync-secret-file is required: the farm secret the ticket keys derive from'])
      const { epoch, nextRotationMs } = writeHaproxyKeyFile({ secretFiles, rotationSeconds: config.ticketRotation, out: opts.out })
      process.stdout.write(`wrote ${opts.out}: the farm's ticket keys for epochs ${epoch - 1}, ${epoch} (encrypting) and ${epoch + 1}; next rotation at ${new Date(nextRotationMs).toISOString()}\n`)
    })
}
