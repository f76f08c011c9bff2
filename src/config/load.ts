import net from 'node:net'
import { YAMLParseError } from 'yaml'
import { ConfigError } from '../errors.js'
import { BoundedFileError, MAX_CONFIG_BYTES, readBoundedFile } from '../util/bounded-file.js'
// YAML numbers reach the options as the text written; see yaml-values.ts.
import { parseConfigYaml as parseYaml } from './yaml-values.js'
import { OPTION_KEYS, OPTIONS, camelCase, envName, optionSpec, type NodeConfig, type OptionKey } from './options.js'


type Source = 'default' | 'file' | 'env' | 'flag'
interface Candidate { value: unknown; source: Source; origin: string }

export interface ConfigSources {
  /** Values given on the command line, keyed by option key (kebab-case). Only given flags. */
  flags?: Partial<Record<OptionKey, unknown>>
  env?: NodeJS.ProcessEnv
  /** YAML file path (`--config`). */
  file?: string
}

/** Where each option of a loaded config was given (flag, variable, file key), for later checks' messages. */
const ORIGINS = new WeakMap<object, Map<OptionKey, string>>()

/**
 * How to name an option in a message about its value: as it was given (`TLSFLEET_CIPHERS`,
 * `node.yaml key "ciphers"`), or `--key` for a default or a config not made by loadConfig.
 */
export function optionOrigin (config: object, key: OptionKey): string {
  return ORIGINS.get(config)?.get(key) ?? `--${key}`
}

/**
 * A message written with flags (`--admin-listen ...`, as the checks of combined options word
 * them), with each option given another way named as given (`TLSFLEET_ADMIN_LISTEN`,
 * `node.yaml key "admin-listen"`): what the operator looks for in a compose file or a YAML one.
 * Options left at their defaults stay flags ("give --admin-token-file").
 */
export function namedAsGiven (config: object, message: string): string {
  const origins = ORIGINS.get(config)
  if (origins === undefined) return message
  return message.replace(/--([a-z][a-z0-9-]*)/g, (flag, key: string) => origins.get(key as OptionKey) ?? flag)
}

/** Merge flags over environment over YAML file over defaults, then validate every key. */
export function loadConfig (sources: ConfigSources = {}): NodeConfig {
  const env = sources.env ?? process.env
  const fromFile = sources.file !== undefined ? readConfigFile(sources.file) : {}
  const problems: string[] = []
  const result: Record<string, unknown> = {}
  const origins = new Map<OptionKey, string>()

  for (const key of OPTION_KEYS) {
    const spec = optionSpec(key)
    const candidate = pick(key, sources.flags?.[key], env[envName(key)], fromFile[key], sources.file)
    if (candidate === undefined) {
      result[camelCase(key)] = typeof spec.default === 'function' ? (spec.default as () => unknown)() : spec.default
      continue
    }
    origins.set(key, candidate.origin)
    // A key given is used as given, null included: `workers:` or TLSFLEET_CERT="" falling back
    // to the default would hide a value the operator meant to write (a self-signed certificate
    // served where a real one was meant).
    const given = trimmed(candidate.value)
    const raw = spec.multiple === true ? asList(given, candidate.source) : given
    // A list option given null or "" is empty as a whole (not a list of one empty item).
    const whole = given === null || given === '' ? given : raw
    const empty = spec.emptyIsNone === true && given === '' ? undefined : emptiness(whole, spec.emptyIsNone === true, candidate.value)
    if (empty !== undefined) {
      const remedy = empty.startsWith('an empty item') ? 'remove the empty item' : REMEDY[candidate.source]
      problems.push(`${candidate.origin}: ${empty} for "${key}" (expected ${spec.expected}; ${remedy})`)
      continue
    }
    const parsed = spec.schema.safeParse(raw)
    if (parsed.success) {
      result[camelCase(key)] = parsed.data
    } else {
      const why = reasons(parsed.error.issues.map((issue) => issue.message), spec.expected)
      const hint = candidate.source === 'file' ? unquotedIpv6Hint(candidate.value) : ''
      problems.push(`${candidate.origin}: ${describe(candidate.value)} is not valid for "${key}": expected ${spec.expected}${why !== '' ? ` (${why})` : ''}${hint}`)
    }
  }
  if (problems.length > 0) throw new ConfigError(problems)
  ORIGINS.set(result, origins)
  return result as NodeConfig
}

function pick (key: OptionKey, flag: unknown, env: string | undefined, file: unknown, filePath: string | undefined): Candidate | undefined {
  if (flag !== undefined) return { value: flag, source: 'flag', origin: `--${key}` }
  if (env !== undefined) return { value: env, source: 'env', origin: envName(key) }
  if (file !== undefined) return { value: file, source: 'file', origin: `${filePath ?? 'config file'} key "${key}"` }
  return undefined
}

/** What an operator does about an empty value, by where it was given. */
const REMEDY: Record<Source, string> = {
  flag: 'give a value or drop the flag',
  env: 'give a value or unset the variable',
  file: 'give a value or remove the key',
  default: 'give a value'
}

/**
 * Text is trimmed wherever it comes from, so that every kind of option reads " modern" as
 * numbers and addresses always did: stray blanks are what env files and YAML quoting leave.
 */
function trimmed (value: unknown): unknown {
  if (typeof value === 'string') return value.trim()
  if (Array.isArray(value)) return value.map((item: unknown) => typeof item === 'string' ? item.trim() : item)
  return value
}

/**
 * Why a given value is empty, or undefined when it is not: null (a YAML key without a value),
 * blank text, an empty list or a blank item of one. `emptyIsNone`: an empty list is that
 * option's documented "none" (TLSFLEET_SYNC_PEER="" in a compose override, which cannot unset).
 */
function emptiness (value: unknown, emptyIsNone: boolean, asGiven: unknown): string | undefined {
  if (value === null || value === '') return typeof asGiven === 'string' && asGiven !== '' ? `blank (${describe(asGiven)})` : 'empty'
  if (!Array.isArray(value)) return undefined
  if (value.length === 0) return emptyIsNone ? undefined : 'an empty list'
  const blank = value.findIndex((item: unknown) => item === null || item === '')
  if (blank < 0) return undefined
  // Which one: in a variable's "a,,b" the item is an extra comma, found by its place.
  const inText = typeof asGiven === 'string' ? ` in ${describe(asGiven)}` : ''
  return `an empty item (item ${blank + 1} of ${value.length}${inText})`
}

/**
 * Repeatable options: env vars are comma-separated, YAML may give a scalar or a list. A blank
 * item of a variable is kept, to be refused: TLSFLEET_LISTEN="a,,b" dropping it would serve
 * other addresses than meant. Only blanks (" , ") read as an empty list.
 */
function asList (value: unknown, source: Source): unknown[] {
  if (Array.isArray(value)) return value
  if (source === 'env' && typeof value === 'string') {
    const items = value.split(',').map((s) => s.trim())
    return items.every((s) => s === '') ? [] : items
  }
  return [value]
}

/**
 * zod's own messages ("Invalid option: expected one of ...", "Too big: expected number to be
 * <=256", "Invalid input") only say again, in its words, what `expected` says in ours: the
 * reasons kept are the parsers' and refinements' own (a port out of range, a bad scheme).
 */
const ZOD_GENERIC = /^(Invalid input|Invalid option|Too small|Too big)\b/

/** zod's wrong-type message, which is worth keeping in words an operator uses. */
const WRONG_TYPE = /^Invalid input: expected (\w+), received (\w+)$/
const TYPE_WORDS: Record<string, string> = { string: 'text', array: 'a list', number: 'a number', boolean: 'a boolean', null: 'empty', object: 'a mapping', undefined: 'nothing' }

function reasons (messages: string[], expected: string): string {
  const own = messages.flatMap((m) => {
    const wrongType = WRONG_TYPE.exec(m)
    if (wrongType !== null) return [`${TYPE_WORDS[wrongType[2] ?? ''] ?? wrongType[2]}, not ${TYPE_WORDS[wrongType[1] ?? ''] ?? wrongType[1]}`]
    // "expected HOST:PORT" from a parser says again what `expected` says ("HOST:PORT or off").
    return ZOD_GENERIC.test(m) || (m.startsWith('expected ') && expected.includes(m.slice('expected '.length))) ? [] : [m]
  })
  return [...new Set(own)].join('; ')
}

/** The value as given, with a URL's password masked (a refused --session-store is echoed to stderr and logs). */
function describe (value: unknown): string {
  // JSON has no Infinity or NaN: it writes them as null, which reads as an empty value.
  const json = JSON.stringify(value, (_key, item: unknown) => typeof item === 'number' && !Number.isFinite(item) ? String(item) : item)
  const text = (typeof value === 'number' && !Number.isFinite(value) ? String(value) : json ?? String(value)).replace(/(\/\/[^/@"]*?:)[^/@"]*@/g, '$1***@')
  return text.length > 80 ? text.slice(0, 77) + '...' : text
}

/** An unquoted `[::1]:8443` right after a key or a list dash: YAML starts a list at the "[". */
const UNQUOTED_BRACKETS = /(?:^|[:-])\s*(\[[^\]'"\s]*:[^\]'"\s]*\](?::\d+)?)/

/** A YAML syntax error on a line holding an unquoted [IPV6]:PORT: say how to write it. */
function bracketSyntaxHint (err: unknown, text: string): string {
  if (!(err instanceof YAMLParseError) || err.linePos === undefined) return ''
  const line = text.split('\n')[err.linePos[0].line - 1] ?? ''
  const bracketed = UNQUOTED_BRACKETS.exec(line)?.[1]
  return bracketed === undefined ? '' : `quote IPv6 addresses in YAML: "${bracketed}" (unquoted, "[" starts a list)`
}

/** `listen: [::1]` reads as a list holding "::1": a refused value like that was meant as an address. */
function unquotedIpv6Hint (value: unknown): string {
  const items = Array.isArray(value) ? value : [value]
  const bare = items.some((item) => typeof item === 'string' && net.isIPv6(item))
  return bare ? '; in YAML, write an IPv6 address quoted, with its brackets and port: "[::1]:8443" (an unquoted [::1] is a list holding ::1)' : ''
}

/**
 * The config file as text, refused unless it is UTF-8 (what YAML 1.2 files are): decoded with
 * replacement, a path written in Latin-1 would silently name another file.
 */
function decodeConfigText (path: string, bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    // Where: the first byte that re-encoding the lenient decoding does not give back.
    const lenient = Buffer.from(bytes.toString('utf8'))
    let at = 0
    while (at < bytes.length && bytes[at] === lenient[at]) at++
    const line = bytes.subarray(0, at).toString('utf8').split('\n').length
    throw new ConfigError([`--config "${path}": not valid UTF-8 (line ${line}, byte ${at}); save it as UTF-8 (a path in Latin-1 would name another file)`])
  }
}

/** Read the YAML file; unknown keys are refused so a typo never silently falls back to a default. */
function readConfigFile (path: string): Partial<Record<OptionKey, unknown>> {
  let bytes: Buffer
  try {
    bytes = readBoundedFile(path, { maxBytes: MAX_CONFIG_BYTES, what: 'a YAML config file' })
  } catch (err) {
    if (err instanceof BoundedFileError) throw new ConfigError([`--config "${path}": ${err.message}`])
    throw new ConfigError([`--config: cannot read "${path}": ${(err as Error).message}`])
  }
  const text = decodeConfigText(path, bytes)
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (err) {
    throw new ConfigError([`${path}: not valid YAML: ${(err as Error).message}${bracketSyntaxHint(err, text)}`])
  }
  if (doc === null || doc === undefined) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError([`${path}: expected a mapping of option keys to values at the top level`])
  }
  // Own keys only: `in` also finds Object.prototype's members (constructor, toString, __proto__).
  const unknown = Object.keys(doc).filter((k) => !Object.hasOwn(OPTIONS, k))
  if (unknown.length > 0) {
    // The closest known key, not the whole list (about 80), which buried the one meant.
    throw new ConfigError(unknown.map((k) => {
      const closest = closestKey(k)
      return `${path}: unknown key "${k}" (${closest !== undefined ? `did you mean "${closest}"? ` : ''}tlsfleet node --help lists the keys)`
    }))
  }
  return doc as Partial<Record<OptionKey, unknown>>
}

/** The option key a misspelled YAML key most likely meant (session_timeout, sessionTimeout, sesion-timeout). */
function closestKey (key: string): string | undefined {
  const written = key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase().replace(/_/g, '-')
  const ranked = OPTION_KEYS.map((name) => ({ name, distance: editDistance(written, name) })).sort((x, y) => x.distance - y.distance)
  const best = ranked[0]
  return best !== undefined && best.distance <= 2 ? best.name : undefined
}

/**
 * TLSFLEET_* variables read elsewhere, not node options: the operator CLI's (TLSFLEET_CONFIG,
 * TLSFLEET_ADMIN_URL) and the repository's CI, test and bench scripts'. Never warned about.
 */
const OTHER_VARIABLES = new Set(['TLSFLEET_CONFIG', 'TLSFLEET_ADMIN_URL', 'TLSFLEET_NODE_PREFIX', 'TLSFLEET_NODE22_PREFIX', 'TLSFLEET_SCREENSHOTS', 'TLSFLEET_BENCH_WORKER'])

/** Edits (insert, delete, replace) from a to b. */
function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length] as number
}

/** The option variable a misspelled one most likely meant: at most two edits away, else none. */
function closestVariable (variable: string): string | undefined {
  const ranked = OPTION_KEYS.map(envName).map((name) => ({ name, distance: editDistance(variable, name) })).sort((x, y) => x.distance - y.distance)
  const best = ranked[0]
  return best !== undefined && best.distance <= 2 ? best.name : undefined
}

/**
 * TLSFLEET_* variables that name no option, each with a warning to log. Warned about, not
 * refused as a YAML typo is: a node's environment is shared with whatever else runs there.
 */
export function unknownEnvironmentVariables (env: NodeJS.ProcessEnv): string[] {
  const options = new Set(OPTION_KEYS.map(envName))
  return Object.keys(env).filter((name) => name.startsWith('TLSFLEET_') && !options.has(name) && !OTHER_VARIABLES.has(name)).sort().map((name) => {
    const closest = closestVariable(name)
    return `environment variable ${name} names no tlsfleet option and is ignored${closest !== undefined ? ` (did you mean ${closest}?)` : ''}`
  })
}
