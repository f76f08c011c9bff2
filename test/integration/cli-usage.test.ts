import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'node:test'
import { runCli } from '../helpers/agent.js'
import { REPO_ROOT } from '../helpers/node-process.js'

/**
 * A wrong command line, as commander finds it, is refused like every other refusal: one stderr
 * line `tlsfleet: ... (TLSFLEET_ERR_USAGE)` naming the command's help, exit 2, nothing run.
 * Help and the version still print as asked and exit 0.
 */

/** The refusal: exit 2, exactly one stderr line, nothing on stdout. */
function refusedLine (result: { code: number | null; stdout: string; stderr: string }): string {
  assert.equal(result.code, 2, result.stdout + result.stderr)
  assert.equal(result.stdout, '')
  assert.match(result.stderr, /^tlsfleet: [^\n]* \(TLSFLEET_ERR_USAGE\)\n$/)
  return result.stderr
}

test('an unknown option, a missing option value, a value outside its choices and an extra argument: one line with TLSFLEET_ERR_USAGE, exit 2', async () => {
  assert.equal(refusedLine(await runCli(['node', '--bogus'])), 'tlsfleet: unknown option \'--bogus\'; see tlsfleet node --help (TLSFLEET_ERR_USAGE)\n')
  // node is the default command: its options are refused the same way without its name.
  assert.match(refusedLine(await runCli(['--bogus'])), /unknown option '--bogus'; see tlsfleet node --help/)
  assert.match(refusedLine(await runCli(['node', '--listen'])), /^tlsfleet: option '--listen <HOST:PORT>' argument missing; see tlsfleet node --help/)
  assert.match(refusedLine(await runCli(['lab', '--sync', 'foo'])), /^tlsfleet: option '--sync <MODE>' argument 'foo' is invalid\. Allowed choices are unicast, multicast, off; see tlsfleet lab --help/)
  assert.match(refusedLine(await runCli(['drain', 'extra'])), /^tlsfleet: too many arguments for 'drain'\. Expected 0 arguments but got 1; see tlsfleet drain --help/)
  // bench parses its arguments with a command of its own.
  assert.match(refusedLine(await runCli(['bench', '--bogus'])), /^tlsfleet: unknown option '--bogus'; see tlsfleet bench --help/)
})

test('a word that names no command is refused as an unknown command, listing them (node, the default, would have taken it as an argument)', async () => {
  for (const args of [['bogus'], ['bogus', '--listen', '127.0.0.1:1'], ['help', 'bogus'], ['--workers', '1', 'bogus']]) {
    assert.match(refusedLine(await runCli(args)), /^tlsfleet: unknown command 'bogus' \(commands: node, demo-backend, status, haproxy-keys, drain, ready, maint, lab, bench\); see tlsfleet --help/, args.join(' '))
  }
})

test('demo-backend on a busy port: the address, --listen and TLSFLEET_ERR_ADDRESS_IN_USE (exit 3), like the node; bench\'s refusals start with tlsfleet: too', async () => {
  const holder = net.createServer()
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
  const port = (holder.address() as net.AddressInfo).port
  try {
    const result = await runCli(['demo-backend', '--listen', `127.0.0.1:${port}`])
    assert.equal(result.code, 3, result.stderr)
    assert.equal(result.stderr, `tlsfleet: 127.0.0.1:${port} is already in use by another process: stop that process or give another --listen (TLSFLEET_ERR_ADDRESS_IN_USE)\n`)
  } finally {
    holder.close()
  }
  assert.match(refusedLine(await runCli(['bench', '--suites', 'bogus'])), /^tlsfleet: --suites: unknown suite "bogus"/)
})

test('commander\'s "Did you mean ...?" stays, on the same line', async () => {
  assert.match(refusedLine(await runCli(['node', '--lisen', '127.0.0.1:1'])), /^tlsfleet: unknown option '--lisen' \(Did you mean --listen\?\); see tlsfleet node --help/)
  assert.match(refusedLine(await runCli(['status', '--tokn-file', 'x'])), /\(Did you mean --token-file\?\)/)
})

test('--help and --version print as before and exit 0', async () => {
  const { version } = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
  const shown = await runCli(['--version'])
  assert.equal(shown.code, 0, shown.stderr)
  assert.equal(shown.stdout.trim(), version)
  for (const args of [['--help'], ['node', '--help'], ['help', 'drain'], ['drain', '-h'], ['bench', '--help']]) {
    const help = await runCli(args)
    assert.equal(help.code, 0, `${args.join(' ')}: ${help.stderr}`)
    assert.match(help.stdout, /^Usage: /, args.join(' '))
    assert.equal(help.stderr, '', args.join(' '))
  }
})

test('numbers on the operator commands are read strictly: empty, blank, hex and exponent forms are refused, exit 2, nothing run', async () => {
  for (const bad of ['', ' ', '0x10', '1e3', '-1', '2.5']) {
    const lab = await runCli(['lab', '--duration', bad])
    assert.equal(lab.code, 2, `lab --duration ${JSON.stringify(bad)}: ${lab.stdout}${lab.stderr}`)
    assert.ok(lab.stderr.includes(`--duration: ${JSON.stringify(bad)} is not an integer from 0 to 86400`), lab.stderr)
    const bench = await runCli(['bench', '--rounds', bad])
    assert.equal(bench.code, 2, `bench --rounds ${JSON.stringify(bad)}: ${bench.stdout}${bench.stderr}`)
    assert.ok(bench.stderr.includes(`--rounds: ${JSON.stringify(bad)} is not an integer from 1 to 100`), bench.stderr)
  }
  // A bad name is a usage error too.
  for (const [flag, says] of [['--suites', 'unknown suite'], ['--targets', 'unknown server']] as const) {
    const bench = await runCli(['bench', flag, 'bogus'])
    assert.equal(bench.code, 2, bench.stderr)
    assert.match(bench.stderr, new RegExp(`${flag}: ${says} "bogus" .*\\(TLSFLEET_ERR_USAGE\\)`))
  }
  for (const bad of ['', ' ', '0x10', '1e3', '0', '601']) {
    // Refused before anything is asked: no node listens at this address.
    const drain = await runCli(['drain', '--admin', 'http://127.0.0.1:9', '--timeout', bad])
    assert.equal(drain.code, 2, `drain --timeout ${JSON.stringify(bad)}: ${drain.stdout}${drain.stderr}`)
    assert.ok(drain.stderr.includes(`--timeout: ${JSON.stringify(bad)} is not a number from 0.1 to 600 (seconds)`), drain.stderr)
  }
})

test('--admin URLs with a password, a query or a fragment are refused before anything is sent (the password never echoed); --move-clients is drain\'s alone', async () => {
  const pw = await runCli(['status', '--admin', 'http://admin:s3cr3t@127.0.0.1:9'])
  assert.equal(pw.code, 2, pw.stderr)
  assert.match(pw.stderr, /--admin: a URL with user:password@ is refused/)
  assert.ok(!pw.stderr.includes('s3cr3t'), pw.stderr)
  for (const url of ['http://127.0.0.1:9/?x=1', 'http://127.0.0.1:9/#top']) {
    const res = await runCli(['drain', '--admin', url])
    assert.equal(res.code, 2, res.stderr)
    assert.match(res.stderr, /a URL with a query or fragment is refused/)
  }
  assert.match(refusedLine(await runCli(['ready', '--move-clients'])), /unknown option '--move-clients'/)
  assert.match(refusedLine(await runCli(['maint', '--move-clients'])), /unknown option '--move-clients'/)
})

test('lab: options of another mode, and bad acts or client kinds, are usage errors (exit 2), nothing started', async () => {
  for (const [args, says] of [
    [['--json'], /--json needs --failover/],
    [['--target', '127.0.0.1:9', '--failover'], /--target runs the load client alone/],
    [['--failover', '--load'], /--load is for a lab without --failover/],
    [['--failover', '--duration', '5'], /--duration is for a lab without --failover/],
    [['--acts', 'bogus'], /--acts: unknown act "bogus"/],
    [['--acts', 'restart'], /--acts: "restart" needs "kill" before it/],
    [['--clients-kind', 'tls99'], /--clients-kind: unknown kind "tls99"/]
  ] as const) {
    assert.match(refusedLine(await runCli(['lab', ...args])), says, args.join(' '))
  }
})
