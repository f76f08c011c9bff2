import { Command } from 'commander'
import { ConfigError } from '../errors.js'
import { envName, optionSpec } from '../config/options.js'
import { writeHaproxyKeyFile } from '../haproxy/key-file.js'

/** A value checked by the node option of the same name, so both refuse the same values alike. */
function nodeOptionValue<T> (key: 'ticket-rotation' | 'sync-secret-file', value: unknown): T {
  const spec = optionSpec(key)
  const parsed = spec.schema.safeParse(value)
  if (!parsed.success) throw new ConfigError([`--${key}: ${JSON.stringify(value)} is not valid: expected ${spec.expected} (${parsed.error.issues.map((i) => i.message).join('; ')})`])
  return parsed.data as T
}

/**
 * `tlsfleet haproxy-keys`: write the tls-ticket-keys file a local HAProxy starts from (run it
 * before HAProxy starts or reloads, e.g. ExecStartPre/ExecReload), with the same names and
 * values as `tlsfleet node`. Prints where and which epoch, never a key.
 */
export function haproxyKeysCommand (): Command {
  return new Command('haproxy-keys')
    .description('write the farm\'s ticket key ring (previous, current, next) as an HAProxy tls-ticket-keys file, for HAProxy\'s own start')
    .option('--sync-secret-file <FILE>', `farm secret (>= 32 bytes, mode 0600), as given to tlsfleet node; repeatable, the first one counts [env ${envName('sync-secret-file')}]`, (value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .option('--ticket-rotation <S>', `seconds between ticket key rotations, as given to tlsfleet node (default 3600) [env ${envName('ticket-rotation')}]`)
    .requiredOption('--out <KEYFILE>', 'the file to write: the tls-ticket-keys file of the HAProxy bind line (written 0600, replaced atomically)')
    .action((opts: { syncSecretFile?: string[]; ticketRotation?: string; out: string }) => {
      const secretFiles = nodeOptionValue<string[]>('sync-secret-file', opts.syncSecretFile ?? process.env[envName('sync-secret-file')]?.split(',').filter((s) => s !== '') ?? [])
      if (secretFiles.length === 0) throw new ConfigError(['--sync-secret-file is required: the farm secret the ticket keys derive from'])
      const rotationSeconds = nodeOptionValue<number>('ticket-rotation', opts.ticketRotation ?? process.env[envName('ticket-rotation')] ?? optionSpec('ticket-rotation').default)
      const { epoch, nextRotationMs } = writeHaproxyKeyFile({ secretFiles, rotationSeconds, out: opts.out })
      process.stdout.write(`wrote ${opts.out}: the farm's ticket keys for epochs ${epoch - 1}, ${epoch} (encrypting) and ${epoch + 1}; next rotation at ${new Date(nextRotationMs).toISOString()}\n`)
    })
}
