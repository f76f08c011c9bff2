import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { nodeCommand } from '../../src/cli/node-command.js'
import { formatHostPort, type HostPort } from '../../src/config/host-port.js'
import { unknownEnvironmentVariables } from '../../src/config/load.js'
import { OPTION_KEYS, envName, optionSpec, type OptionKey } from '../../src/config/options.js'
import { docLines, readDoc, sectionLines, tableRows, where, type DocLine } from '../helpers/docs.js'
import { REPO_ROOT } from '../helpers/node-process.js'

/**
 * docs/operations.md's Options table against the node's option table (src/config/options.ts)
 * and the flags `tlsfleet node` defines: every flag has a row with the code's default, every
 * row names a real flag; the TLSFLEET_* variables and YAML keys the docs name are those the
 * code derives.
 */

interface Row { flags: string[], defaultCell: string, at: DocLine }

function optionRows (): Row[] {
  return tableRows(sectionLines('docs/operations.md', '## Options'), 'flag').map(({ cells, at }) => ({
    flags: [...(cells[0] ?? '').matchAll(/`(--?[a-z0-9-]+)/g)].map((m) => m[1] as string),
    defaultCell: cells[1] ?? '',
    at
  }))
}

/** The flags `tlsfleet node` defines, long form. */
function nodeFlags (): string[] {
  return nodeCommand().options.map((o) => o.long).filter((l): l is string => l !== undefined)
}

/** A documented default as text: backticks and a trailing explanation in parentheses dropped. */
function plain (text: string): string {
  return text.replace(/`/g, '').replace(/\s*\([^)]*\)\s*$/, '').trim()
}

/** Sizes as the docs write them: 64 MiB. */
function bytesOf (text: string): number | undefined {
  const m = /^(\d+) (KiB|MiB|GiB)$/.exec(text)
  if (m === null) return undefined
  return Number(m[1]) * 1024 ** (['KiB', 'MiB', 'GiB'].indexOf(m[2] as string) + 1)
}

/** The code's default as the docs would write it, or undefined when it is computed or empty. */
function concreteDefault (key: OptionKey): string | undefined {
  const spec = optionSpec(key)
  if (typeof spec.default === 'function' && spec.defaultHelp !== undefined) return undefined
  const value = typeof spec.default === 'function' ? (spec.default as () => unknown)() : spec.default
  const items = (Array.isArray(value) ? value : [value]).map((v) => typeof v === 'object' && v !== null ? formatHostPort(v as HostPort) : String(v))
  const text = items.join(',')
  return text === '' ? undefined : text
}

/** Lower-case words and numbers, a plural's `s` dropped: to tell prose defaults apart. */
function words (text: string): Set<string> {
  return new Set((text.toLowerCase().match(/[a-z0-9]+/g) ?? []).map((w) => w.length > 3 ? w.replace(/s$/, '') : w))
}

/** Whether the docs' default cell says the code's default, for one flag. */
function defaultProblem (key: OptionKey, documented: string): string | undefined {
  const spec = optionSpec(key)
  const doc = plain(documented)
  const concrete = concreteDefault(key)
  if (concrete !== undefined) {
    const same = doc === concrete || String(bytesOf(doc)) === concrete
    return same ? undefined : `the code's default is ${JSON.stringify(concrete)}, the docs say ${JSON.stringify(documented)}`
  }
  // Computed or empty: the words of --help's default (defaultHelp) or "none".
  const help = spec.defaultHelp ?? 'none'
  if (doc === 'none' && help.startsWith('none')) return undefined
  const shared = [...words(doc)].filter((w) => words(help).has(w))
  return shared.length > 0 ? undefined : `--help says the default is ${JSON.stringify(help)}, the docs say ${JSON.stringify(documented)}`
}

/** The default cell split over the row's flags: `100000, 64 MiB` for two, one text for all when it is one. */
function defaultsPerFlag (row: Row): string[] {
  const parts = row.defaultCell.split(/,\s+/)
  if (row.flags.length === 1) return [row.defaultCell]
  if (parts.length === row.flags.length) return parts
  return row.flags.map(() => row.defaultCell)
}

test('docs/operations.md Options: every flag of tlsfleet node has a row, and every row names one', () => {
  const rows = optionRows()
  assert.ok(rows.length > 40, `the Options table was not found (${rows.length} rows)`)
  const documented = new Map<string, DocLine>()
  for (const row of rows) {
    assert.ok(row.flags.length > 0, `${where(row.at)}: a row that names no flag`)
    for (const flag of row.flags) documented.set(flag, row.at)
  }
  const defined = new Set(nodeFlags())
  const missing = [...defined].filter((f) => !documented.has(f))
  assert.deepEqual(missing, [], `flags of tlsfleet node with no row in docs/operations.md ## Options: ${missing.join(', ')}`)
  const unknown = [...documented].filter(([f]) => !f.startsWith('--') ? false : !defined.has(f)).map(([f, at]) => `${f} (${where(at)})`)
  assert.deepEqual(unknown, [], `rows naming no flag of tlsfleet node: ${unknown.join(', ')}`)
})

test('docs/operations.md Options: every row\'s default is the code\'s', () => {
  const problems: string[] = []
  for (const row of optionRows()) {
    const defaults = defaultsPerFlag(row)
    row.flags.forEach((flag, i) => {
      const key = flag.replace(/^--/, '') as OptionKey
      if (!OPTION_KEYS.includes(key)) return // --config, -c: not an option of the table (no default of its own)
      const problem = defaultProblem(key, defaults[i] as string)
      if (problem !== undefined) problems.push(`${where(row.at)} ${flag}: ${problem}`)
    })
  }
  assert.deepEqual(problems, [])
})

test('-c/--config: documented with TLSFLEET_CONFIG, the variable the node reads', () => {
  const row = optionRows().find((r) => r.flags.includes('--config'))
  assert.ok(row !== undefined)
  assert.ok(row.flags.includes('-c'), `${where(row.at)}: the short flag`)
  assert.equal(nodeCommand().options.find((o) => o.long === '--config')?.short, '-c')
  assert.match(row.defaultCell, /TLSFLEET_CONFIG/)
  assert.match(fs.readFileSync(path.join(REPO_ROOT, 'src', 'cli', 'node-command.ts'), 'utf8'), /env\.TLSFLEET_CONFIG/)
})

/** TLSFLEET_* names the code reads besides the options' own (envName): found in src/ as written. */
function otherVariablesInCode (): Set<string> {
  const names = new Set<string>()
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(file)
      else if (entry.name.endsWith('.ts')) for (const m of fs.readFileSync(file, 'utf8').matchAll(/TLSFLEET_[A-Z0-9_]+/g)) names.add(m[0])
    }
  }
  walk(path.join(REPO_ROOT, 'src'))
  return names
}

test('every TLSFLEET_* variable the docs name is one the code reads', () => {
  const derived = new Set(OPTION_KEYS.map(envName))
  const inCode = otherVariablesInCode()
  // Names written as mistakes on purpose: the docs show what the node says about a typo.
  const typosShown = new Set(['TLSFLEET_LISTN'])
  const problems: string[] = []
  for (const file of ['README.md', 'docs/operations.md', 'docs/architecture.md', 'docs/lab.md', 'docs/terminators.md', 'docs/scaling.md']) {
    for (const at of docLines(file)) {
      for (const m of at.text.matchAll(/TLSFLEET_[A-Z0-9_]*[A-Z0-9]/g)) {
        const name = m[0]
        if (name.startsWith('TLSFLEET_ERR_') || typosShown.has(name) || derived.has(name) || inCode.has(name)) continue
        problems.push(`${where(at)}: ${name}`)
      }
    }
  }
  assert.deepEqual(problems, [], 'variables no code reads')
  // The examples the README gives are an option's own variable, as the code derives it.
  assert.equal(envName('session-timeout'), 'TLSFLEET_SESSION_TIMEOUT')
  for (const name of ['TLSFLEET_ADMIN_URL', 'TLSFLEET_ADMIN_TOKEN_FILE', 'TLSFLEET_CONFIG']) assert.ok(inCode.has(name), `${name} is not read in src/`)
})

test('the YAML keys the docs show are option keys', () => {
  const keys = new Set<string>(OPTION_KEYS)
  const problems: string[] = []
  const shown: string[] = []
  for (const file of ['README.md', 'docs/operations.md']) {
    const lines = docLines(file)
    lines.forEach((at, i) => {
      for (const m of at.text.matchAll(/`([a-z][a-z0-9_-]*):(?: ([^`]*))?`/g)) {
        // A node.yaml line the docs show: "YAML" said just before it (`workers: 0x10`, `cert: []`).
        const before = `${lines[i - 1]?.text ?? ''} ${at.text.slice(0, m.index)}`.slice(-100)
        if (!/YAML/.test(before)) continue
        shown.push(m[1] as string)
        if (!keys.has(m[1] as string)) problems.push(`${where(at)}: ${JSON.stringify(m[0])}`)
      }
    })
  }
  assert.ok(shown.length >= 5, `expected the docs' YAML examples (found ${shown.join(', ')})`)
  assert.deepEqual(problems, [], 'YAML keys that are no option')
})

test('tlsfleet node --help lists every option with its environment variable, as operations.md says', () => {
  assert.match(readDoc('docs/operations.md'), /`tlsfleet node\s+--help` lists every option with its environment variable/)
  const help = nodeCommand().helpInformation()
  assert.deepEqual(OPTION_KEYS.filter((key) => !help.includes(`[env ${envName(key)}]`)), [])
  assert.match(help, /\[env TLSFLEET_CONFIG\]/)
})

test('the variables operations.md says the node does not warn about are not warned about, and its typo example is', () => {
  const doc = readDoc('docs/operations.md').replace(/\s+/g, ' ')
  const said = /\((`TLSFLEET_[A-Z_]+`[^)]*) are not warned about\)/.exec(doc)?.[1]
  assert.ok(said !== undefined, 'the sentence was not found')
  const names = [...said.matchAll(/`(TLSFLEET_[A-Z_]+)`/g)].map((m) => m[1] as string)
  assert.ok(names.length >= 2)
  assert.deepEqual(unknownEnvironmentVariables(Object.fromEntries(names.map((n) => [n, 'x']))), [])
  const typo = /`(TLSFLEET_[A-Z]+)`: did you mean `(TLSFLEET_[A-Z]+)`\?/.exec(doc)
  assert.ok(typo !== null, 'the typo example was not found')
  assert.match(unknownEnvironmentVariables({ [typo[1] as string]: 'x' })[0] ?? '', new RegExp(`did you mean ${typo[2] as string}\\?`))
})
