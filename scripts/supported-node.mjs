#!/usr/bin/env node
// Runs `node <args>` with a supported Node.js (22 >= 22.19, or 24+): the Node running this
// script when it qualifies, otherwise Node 24 from the npm registry, installed once into
// .tlsfleet/node24 (git-ignored). This is what lets `npm start` and `npm test` work on a
// machine whose own Node is older (Node 20 is end of life). Plain JavaScript, so that any
// Node that can run npm can run it.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { followChild, isSupportedNode, SUPPORTED_NODE } from '../bin/node-support.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const supported = isSupportedNode(process.versions.node)

function localNode24 () {
  const prefix = path.join(root, '.tlsfleet', 'node24')
  const bin = path.join(prefix, 'node_modules', 'node', 'bin')
  const node = path.join(bin, 'node')
  const works = () => fs.existsSync(node) && spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout?.startsWith('v24.')
  if (!works()) {
    process.stderr.write(`Node.js ${process.versions.node} is not supported (tlsfleet needs ${SUPPORTED_NODE}); installing Node 24 from the npm registry into ${prefix} (once)...\n`)
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
    const install = spawnSync(npm, ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel', 'error', 'node@24'], { stdio: 'inherit' })
    if (install.status !== 0 || !works()) {
      process.stderr.write(`could not install Node 24; install Node.js ${SUPPORTED_NODE} yourself and run this again\n`)
      process.exit(1)
    }
  }
  return { node, bin }
}

const { node, bin } = supported ? { node: process.execPath, bin: path.dirname(process.execPath) } : localNode24()
// Children that call `node` (or process.execPath) get the same runtime.
const env = { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` }
followChild(spawn(node, process.argv.slice(2), { stdio: 'inherit', env }))
