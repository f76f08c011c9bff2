import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { CLI, REPO_ROOT } from '../helpers/node-process.js'

/** bin/tlsfleet.js ARGS on this Node.js, made to report `version` as its own (a preload). */
function launchAs (version: string, args: string[]): { status: number | null; stdout: string; stderr: string; cwd: string } {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-launcher-'))
  const preload = `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"${version}"})`
  const r = spawnSync(process.execPath, ['--import', preload, CLI, ...args], { cwd, encoding: 'utf8', timeout: 30_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, cwd }
}

test('the launcher refuses an unsupported Node.js with one line that says what is needed, before anything loads or is written', () => {
  for (const version of ['20.20.2', '22.18.0', '18.0.0']) {
    const r = launchAs(version, ['node', '--listen', '127.0.0.1:0'])
    assert.equal(r.status, 2, r.stderr)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, new RegExp(`^tlsfleet needs Node\\.js 22 \\(22\\.19 or later\\) or 24; this is Node\\.js ${version.replaceAll('.', '\\.')} \\(`))
    assert.match(r.stderr, /`npm start` fetches Node\.js 24/)
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.deepEqual(fs.readdirSync(r.cwd), [], 'no state dir, no self-signed certificate')
    fs.rmSync(r.cwd, { recursive: true, force: true })
  }
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
