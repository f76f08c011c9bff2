import { Command, Option } from 'commander'
import { loadConfig, unknownEnvironmentVariables } from '../config/load.js'
import { OPTION_KEYS, camelCase, defaultForHelp, envName, optionSpec, type OptionKey } from '../config/options.js'
import { Primary } from '../node/primary.js'

/** `tlsfleet node`: every option of the config table becomes a flag here. */
export function nodeCommand (): Command {
  const command = new Command('node')
    .description('run an accelerator node: a primary and its TLS-terminating workers, or (--terminator haproxy) the companion of a local HAProxy that terminates TLS')
    .option('-c, --config <FILE>', 'YAML file with any of the options below (flags win over TLSFLEET_* env vars, which win over the file) [env TLSFLEET_CONFIG]')
  for (const key of OPTION_KEYS) {
    const spec = optionSpec(key)
    const flag = `--${key} <${spec.valueName ?? 'VALUE'}>`
    const option = new Option(flag, `${spec.description} (default: ${defaultForHelp(key)}) [env ${envName(key)}]`)
    if (spec.multiple === true) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    command.addOption(option)
  }
  command.action(async (opts: Record<string, unknown>) => {
    const flags: Partial<Record<OptionKey, unknown>> = {}
    for (const key of OPTION_KEYS) {
      const value = opts[camelCase(key)]
      if (value !== undefined) flags[key] = value
    }
    const file = (opts.config as string | undefined) ?? process.env.TLSFLEET_CONFIG
    const config = loadConfig({ flags, env: process.env, ...(file !== undefined ? { file } : {}) })
    const primary = new Primary(config, unknownEnvironmentVariables(process.env))
    primary.handleSignals()
    await primary.start()
  })
  return command
}
