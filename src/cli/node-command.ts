import { Command, Option } from 'commander'
import { loadConfig, unknownEnvironmentVariables } from '../config/load.js'
import { OPTION_KEYS, camelCase, defaultForHelp, envName, optionSpec, type NodeConfig, type OptionKey } from '../config/options.js'
import { ConfigError } from '../errors.js'
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
    const config = loadNodeConfig(flags, opts.config as string | undefined, process.env)
    const primary = new Primary(config, unknownEnvironmentVariables(process.env))
    primary.handleSignals()
    await primary.start()
  })
  return command
}

/**
 * loadConfig with the YAML file of `--config`, else of TLSFLEET_CONFIG, each named as given: the
 * file reader's messages say --config, which an operator who set only the variable looks for in
 * vain. An empty or blank path is refused as such rather than read as the file "".
 */
export function loadNodeConfig (flags: Partial<Record<OptionKey, unknown>>, configFlag: string | undefined, env: NodeJS.ProcessEnv): NodeConfig {
  const fromEnv = configFlag === undefined
  const file = configFlag ?? env.TLSFLEET_CONFIG
  const origin = fromEnv ? 'TLSFLEET_CONFIG' : '--config'
  if (file !== undefined && file.trim() === '') {
    throw new ConfigError([`${origin}: ${file === '' ? 'empty' : `blank (${JSON.stringify(file)})`} (give the YAML file's path or ${fromEnv ? 'unset the variable' : 'drop the flag'})`])
  }
  try {
    return loadConfig({ flags, env, ...(file !== undefined ? { file } : {}) })
  } catch (err) {
    if (!fromEnv || !(err instanceof ConfigError)) throw err
    throw new ConfigError(err.problems.map((problem) => problem.replace(/^--config: /, 'TLSFLEET_CONFIG: ')))
  }
}
