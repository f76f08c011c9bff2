#!/usr/bin/env node
// `npm start` runs the built JavaScript in dist/: after a `git pull` (or an edit) without a
// build, it would run yesterday's code. Builds first when a source is newer than the build
// (tsc rewrites every output, so the oldest output is the build's time). Plain JavaScript,
// run by whatever Node runs npm. Usage: node scripts/build-if-stale.mjs [ROOT]
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'))
const built = path.join(root, 'dist', 'src', 'cli', 'main.js')

/** Newest modification time under `dir` of files ending in `ext` (0 when none). */
function newest (dir, ext) {
  let latest = 0
  let entries
  try { entries = fs.readdirSync(dir, { withFileTypes: true }) } catch { return 0 }
  for (const entry of entries) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) latest = Math.max(latest, newest(full, ext))
    else if (entry.name.endsWith(ext)) latest = Math.max(latest, fs.statSync(full).mtimeMs)
  }
  return latest
}

const tsconfig = path.join(root, 'tsconfig.json')
// An installed package ships dist/ only: nothing to build.
if (!fs.existsSync(tsconfig)) process.exit(0)
const sources = Math.max(newest(path.join(root, 'src'), '.ts'), fs.statSync(tsconfig).mtimeMs)
const buildTime = fs.existsSync(built) ? fs.statSync(built).mtimeMs : 0
if (sources > buildTime) {
  process.stderr.write(buildTime === 0 ? 'no build yet: building (npm run build)...\n' : 'sources changed since the last build: building (npm run build)...\n')
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  if (!fs.existsSync(tsc)) {
    process.stderr.write('TypeScript is not installed: run npm ci first\n')
    process.exit(1)
  }
  const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' })
  if (result.status !== 0) process.exit(result.status ?? 1)
}
