import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { CLI, REPO_ROOT } from '../helpers/node-process.js'

/**
 * bin/tlsfleet.js ARGS on this Node.js, made to report `version` as its own (a preload); `cli`:
 * another copy of the launcher (one with no .tlsfleet/node24 beside it, or a fake one).
 */
function launchAs (version: string, args: string[], cli = CLI): { status: number | null; stdout: string; stderr: string; cwd: string } {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-launcher-'))
  const preload = `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"${version}"})`
  const r = spawnSync(process.execPath, ['--import', preload, cli, ...args], { cwd, encoding: 'utf8', timeout: 30_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, cwd }
}

/** A copy of bin/ in a directory of its own, optionally with a .tlsfleet/node24 node beside it (a script). */
function launcherCopy (node24Script?: string): { cli: string; root: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-launcher-copy-'))
  fs.mkdirSync(path.join(root, 'bin'))
  for (const file of ['tlsfleet.js', 'node-support.js']) fs.copyFileSync(path.join(REPO_ROOT, 'bin', file), path.join(root, 'bin', file))
  if (node24Script !== undefined) {
    const dir = path.join(root, '.tlsfleet', 'node24', 'node_modules', 'node', 'bin')
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, 'node'), node24Script, { mode: 0o755 })
  }
  return { cli: path.join(root, 'bin', 'tlsfleet.js'), root }
}

test('the launcher refuses an unsupported Node.js with one line that says what is needed, before anything loads or is written', () => {
  const copy = launcherCopy()
  for (const version of ['20.20.2', '22.18.0', '18.0.0']) {
    const r = launchAs(version, ['node', '--listen', '127.0.0.1:0'], copy.cli)
    assert.equal(r.status, 2, r.stderr)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, new RegExp(`^tlsfleet needs Node\\.js 22 \\(22\\.19 or later\\) or 24; this is Node\\.js ${version.replaceAll('.', '\\.')} \\(`))
    assert.match(r.stderr, /`npm start` fetches Node\.js 24/)
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.deepEqual(fs.readdirSync(r.cwd), [], 'no state dir, no self-signed certificate')
    fs.rmSync(r.cwd, { recursive: true, force: true })
  }
  fs.rmSync(copy.root, { recursive: true, force: true })
})

test('on an unsupported Node.js the launcher runs the Node 24 that `npm start` fetched into the checkout, with the same arguments and exit status', () => {
  const copy = launcherCopy('#!/bin/sh\necho "node24 ran: $*"\nexit 7\n')
  const r = launchAs('20.20.2', ['status', '--json'], copy.cli)
  assert.equal(r.status, 7, r.stderr)
  assert.equal(r.stdout.trim(), `node24 ran: ${copy.cli} status --json`)
  assert.equal(r.stderr, '')
  fs.rmSync(r.cwd, { recursive: true, force: true })
  fs.rmSync(copy.root, { recursive: true, force: true })
})

test('the launcher runs the CLI on a supported Node.js (22.19 and later, 24)', () => {
  const { version } = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
  for (const node of ['22.19.0', '24.0.0', process.versions.node]) {
    const r = launchAs(node, ['--version'])
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout.trim(), version)
    fs.rmSync(r.cwd, { recursive: true, force: true })
  }
})

/** scripts/supported-node.mjs ARGS from a copy of the repository's scripts/ and bin/ (no Node 24 installed there), reporting `version`, with an npm that fails. */
function supportedNodeAs (version: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-supported-node-'))
  for (const file of ['scripts/supported-node.mjs', 'bin/node-support.js']) {
    fs.mkdirSync(path.join(root, path.dirname(file)), { recursive: true })
    fs.copyFileSync(path.join(REPO_ROOT, file), path.join(root, file))
  }
  fs.mkdirSync(path.join(root, 'fake-bin'))
  fs.writeFileSync(path.join(root, 'fake-bin', 'npm'), '#!/bin/sh\nexit 1\n', { mode: 0o755 })
  const preload = `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"${version}"})`
  const env = { ...process.env, PATH: `${path.join(root, 'fake-bin')}${path.delimiter}${process.env.PATH ?? ''}` }
  const r = spawnSync(process.execPath, ['--import', preload, path.join(root, 'scripts', 'supported-node.mjs'), ...args], { cwd: root, env, encoding: 'utf8', timeout: 30_000 })
  fs.rmSync(root, { recursive: true, force: true })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

test('npm start/test\'s runner uses a supported Node.js as it is, and names the supported versions when it cannot fetch Node 24', () => {
  const ran = supportedNodeAs('24.0.0', ['-e', 'console.log("ran on", process.execPath)'])
  assert.equal(ran.status, 0, ran.stderr)
  assert.equal(ran.stdout.trim(), `ran on ${process.execPath}`)
  const refused = supportedNodeAs('20.20.2', ['-e', 'console.log("should not run")'])
  assert.equal(refused.status, 1)
  assert.equal(refused.stdout, '')
  assert.match(refused.stderr, /^Node\.js 20\.20\.2 is not supported \(tlsfleet needs 22 \(22\.19 or later\) or 24\); installing Node 24 from the npm registry/)
  assert.match(refused.stderr, /could not install Node 24; install Node\.js 22 \(22\.19 or later\) or 24 yourself/)
})

test('npm start builds first when a source is newer than the build (a git pull without npm run build ran the old code), and only then', () => {
  // A project of one source file, built by the checkout's own TypeScript.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-stale-'))
  fs.mkdirSync(path.join(root, 'src', 'cli'), { recursive: true })
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(root, 'node_modules'))
  fs.writeFileSync(path.join(root, 'tsconfig.json'), JSON.stringify({ compilerOptions: { rootDir: '.', outDir: 'dist', module: 'NodeNext', target: 'ES2023', types: [] }, include: ['src/**/*.ts'] }))
  const main = path.join(root, 'src', 'cli', 'main.ts')
  const built = path.join(root, 'dist', 'src', 'cli', 'main.js')
  const run = (): { status: number | null; stderr: string } => {
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'build-if-stale.mjs'), root], { encoding: 'utf8', timeout: 120_000 })
    return { status: r.status, stderr: r.stderr }
  }
  fs.writeFileSync(main, 'export const version = 1\n')
  const first = run()
  assert.equal(first.status, 0, first.stderr)
  assert.match(first.stderr, /^no build yet: building/)
  assert.match(fs.readFileSync(built, 'utf8'), /version = 1/)

  assert.deepEqual(run(), { status: 0, stderr: '' }, 'built again with nothing changed')

  fs.writeFileSync(main, 'export const version = 2\n')
  const later = new Date(Date.now() + 2000)
  fs.utimesSync(main, later, later)
  const pulled = run()
  assert.match(pulled.stderr, /^sources changed since the last build: building/)
  assert.match(fs.readFileSync(built, 'utf8'), /version = 2/)

  fs.writeFileSync(main, 'export const version: number = "broken"\n')
  const muchLater = new Date(Date.now() + 4000)
  fs.utimesSync(main, muchLater, muchLater)
  assert.notEqual(run().status, 0, 'a failed build let the old code start')
  fs.rmSync(root, { recursive: true, force: true })
})

/**
 * `npm start` runs its script as `sh -c "... && node scripts/supported-node.mjs ..."`. A SIGTERM
 * to npm alone (`kill <npm's pid>`, a supervisor that signals its main process) is passed to
 * that sh, which dies of it without passing it on: the node ran on, orphaned, holding its ports.
 * Seen running the README's `npm start` and sending SIGTERM to npm.
 */
test('npm start\'s runner stops its child when npm\'s shell is gone (a SIGTERM to npm alone)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-orphan-'))
  const marker = path.join(dir, 'stopped')
  const pidFile = path.join(dir, 'pid')
  const child = `const fs = require("fs"); fs.writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); process.on("SIGTERM", () => { fs.writeFileSync(${JSON.stringify(marker)}, "SIGTERM"); process.exit(0) }); setInterval(() => {}, 1000)`
  // As npm runs a script: a shell, the runner under it, npm_lifecycle_event set.
  const shell = spawn('sh', ['-c', `${JSON.stringify(process.execPath)} scripts/supported-node.mjs -e '${child}'; echo done`], {
    cwd: REPO_ROOT, env: { ...process.env, npm_lifecycle_event: 'start' }, stdio: 'ignore'
  })
  try {
    await new Promise((resolve) => setTimeout(resolve, 1500))
    shell.kill('SIGTERM') // what npm does with the SIGTERM it gets
    const deadline = Date.now() + 5000
    while (!fs.existsSync(marker) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal(fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : 'still running 5 s after its shell died', 'SIGTERM')
  } finally {
    // The child, if the test failed (the runner exits with it).
    if (!fs.existsSync(marker) && fs.existsSync(pidFile)) { try { process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL') } catch { /* gone */ } }
  }
})
