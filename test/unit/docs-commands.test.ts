import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Command } from 'commander'
import fs from 'node:fs'
import path from 'node:path'
import { demoBackendCommand } from '../../src/cli/backend-command.js'
import { haproxyKeysCommand } from '../../src/cli/haproxy-keys-command.js'
import { nodeCommand } from '../../src/cli/node-command.js'
import { labCommand } from '../../src/cli/lab-command.js'
import { stateCommand } from '../../src/cli/state-commands.js'
import { statusCommand } from '../../src/cli/status-command.js'
import { docLines, readDoc, where, type DocLine } from '../helpers/docs.js'
import { REPO_ROOT } from '../helpers/node-process.js'

/**
 * The flags of the other commands where the docs list them in prose: `tlsfleet lab` in
 * docs/lab.md ("Options: ..."), status/drain/ready/maint in docs/operations.md ("Their flags:
 * ..."), `haproxy-keys` in its example. Each flag the command defines is named, each flag named
 * is defined, and a default the docs give ("(default 5)", "0, the default") is the code's:
 * commander's default, else the one its --help text says ("(default 5)").
 */

/** The paragraph of `file` that starts with `start`, joined into one line (cut where `end` begins, if given). */
function paragraph (file: string, start: string, end?: string): { text: string, at: DocLine } {
  const lines = docLines(file)
  const first = lines.findIndex((l) => l.text.startsWith(start))
  assert.ok(first >= 0, `${file}: no paragraph starting ${JSON.stringify(start)}`)
  let last = first
  while (last < lines.length && (lines[last] as DocLine).text.trim() !== '') last++
  const text = lines.slice(first, last).map((l) => l.text).join(' ')
  return { text: end === undefined ? text : text.split(end)[0] as string, at: lines[first] as DocLine }
}

/** Each `--flag ...` span of the text, with the default its parenthesis gives, if any. */
function documentedFlags (text: string): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>()
  for (const m of text.matchAll(/`(--[a-z0-9-]+)[^`]*`(?: \(((?:[^()]|\([^()]*\))*)\))?/g)) {
    const note = m[2] ?? ''
    const given = /default `?([^`,;)\s]+)`?/.exec(note)?.[1] ?? /(?:^|; )`?([^`,;\s]+)`?, the default/.exec(note)?.[1]
    out.set(m[1] as string, given ?? out.get(m[1] as string))
  }
  return out
}

/** What a flag defaults to, as --help says it. */
function codeDefault (command: Command, flag: string): string | undefined {
  const option = command.options.find((o) => o.long === flag)
  if (option === undefined) return undefined
  if (option.defaultValue !== undefined && option.defaultValue !== false) return String(option.defaultValue)
  return /\(default ([^)\s]+)\)/.exec(option.description)?.[1]
}

function compare (commands: Command[], documented: Map<string, string | undefined>, where: string): string[] {
  const problems: string[] = []
  const defined = new Set(commands.flatMap((c) => c.options.map((o) => o.long)).filter((l): l is string => l !== undefined))
  for (const flag of defined) if (!documented.has(flag)) problems.push(`${where}: ${flag} (defined by ${commands.map((c) => c.name()).join('/')}) is not named`)
  for (const [flag, given] of documented) {
    if (!defined.has(flag)) { problems.push(`${where}: ${flag} is no flag of ${commands.map((c) => c.name()).join('/')}`); continue }
    if (given === undefined) continue
    const code = commands.map((c) => codeDefault(c, flag)).find((d) => d !== undefined)
    if (code !== given) problems.push(`${where}: ${flag} default ${JSON.stringify(given)} documented, the code's is ${JSON.stringify(code)}`)
  }
  return problems
}

test('docs/lab.md Options: the flags of tlsfleet lab, with their defaults', () => {
  const { text, at } = paragraph('docs/lab.md', 'Options:')
  const documented = documentedFlags(text)
  // --failover is the lab's mode, shown in the commands above the paragraph ("Without `--failover`").
  assert.ok(readDoc('docs/lab.md').includes('npx tlsfleet lab --failover'))
  documented.set('--failover', documented.get('--failover'))
  assert.ok([...documented.values()].filter((d) => d !== undefined).length >= 6, `defaults not read from ${at.file}:${at.line}`)
  assert.deepEqual(compare([labCommand()], documented, `${at.file}:${at.line}`), [])
})

test('docs/operations.md: the flags of tlsfleet status, drain, ready and maint, with their defaults', () => {
  const { text, at } = paragraph('docs/operations.md', 'Their flags:', 'The agent reports')
  const commands = [statusCommand(), stateCommand('drain'), stateCommand('ready'), stateCommand('maint')]
  const documented = documentedFlags(text)
  assert.ok([...documented.values()].filter((d) => d !== undefined).length >= 3, `defaults not read from ${at.file}:${at.line}`)
  assert.deepEqual(compare(commands, documented, `${at.file}:${at.line}`), [])
})

test('docs/operations.md: the haproxy-keys example uses the flags it has, and names each', () => {
  const doc = readDoc('docs/operations.md')
  const example = /tlsfleet haproxy-keys ([^\n]*\n[^\n]*)/.exec(doc)?.[1] ?? ''
  const documented = new Map([...example.matchAll(/(--[a-z0-9-]+)/g)].map((m) => [m[1] as string, undefined]))
  // -c/--config is documented with the node's files (the `--config` row of "Files named by options": `haproxy-keys --config`).
  if (doc.includes('`haproxy-keys --config`')) documented.set('--config', undefined)
  assert.deepEqual(compare([haproxyKeysCommand()], documented, 'docs/operations.md haproxy-keys example'), [])
})

test('docs/benchmarks.md names every flag of tlsfleet bench', async () => {
  const { benchCommand } = await import('../../benchmarks/cli.js')
  const doc = readDoc('docs/benchmarks.md')
  const flags = benchCommand().options.map((o) => o.long).filter((l): l is string => l !== undefined)
  assert.ok(flags.length > 20)
  // benchmarks.md also names node and V8 flags, so only this direction: each of bench's is there.
  assert.deepEqual(flags.filter((f) => !new RegExp(`(^|[\\s\`(])${f}(?![a-z-])`, 'm').test(doc)), [], 'bench flags docs/benchmarks.md never names')
})

/**
 * Other programs' flags the docs quote on purpose: hitch's, Node's and V8's, docker compose's,
 * redis-server's, prlimit's, chrt's, commander's --help. A flag outside this list and outside
 * every tlsfleet command (a renamed or removed option) fails.
 */
const OTHER_TOOLS_FLAGS = new Set([
  '--help', '--build', '--test', '--import', '--silent', '--enable-sessioncache', '--frontend', '--shared-cache-listen', '--shared-cache-peer',
  '--pid', '--save', '--appendonly', '--idle', '--min', '--single-threaded', '--single-threaded-gc', '--trace-children', '--no-memory-reducer',
  '--initial-old-space-size', '--min-semi-space-size', '--max-semi-space-size', '--trace-opt', '--trace-gc', '--trace-gc-nvp', '--perf-basic-prof'
])

test('every --flag the README and docs/ name is a flag of a tlsfleet command (or a quoted tool\'s)', async () => {
  const { benchCommand } = await import('../../benchmarks/cli.js')
  const commands = [nodeCommand(), labCommand(), statusCommand(), stateCommand('drain'), haproxyKeysCommand(), demoBackendCommand(), benchCommand()]
  const known = new Set(commands.flatMap((c) => c.options.map((o) => o.long)).filter((l): l is string => l !== undefined))
  const files = ['README.md', ...fs.readdirSync(path.join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
  const problems: string[] = []
  for (const file of files) {
    for (const at of docLines(file)) {
      for (const m of at.text.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*)/g)) {
        const flag = m[1] as string
        if (!known.has(flag) && !OTHER_TOOLS_FLAGS.has(flag)) problems.push(`${where(at)}: ${flag}`)
      }
    }
  }
  assert.deepEqual(problems, [], 'flags no tlsfleet command has')
})
