#!/usr/bin/env node
// Thin launcher: the CLI is compiled from src/cli/main.ts into dist/. The Node.js version is
// checked first and the CLI imported only after it: on an older Node.js the CLI's dependencies
// fail to load with errors that do not say why.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { followChild, isSupportedNode, SUPPORTED_NODE } from './node-support.js'

if (!isSupportedNode(process.versions.node)) {
  // The Node.js 24 `npm start` fetched into this checkout (scripts/supported-node.mjs) runs
  // every other command too: `npx tlsfleet status` on the machine's old Node.js works as well.
  const node24 = fileURLToPath(new URL('../.tlsfleet/node24/node_modules/node/bin/node', import.meta.url))
  if (!fs.existsSync(node24)) {
    process.stderr.write(`tlsfleet needs Node.js ${SUPPORTED_NODE}; this is Node.js ${process.versions.node} (${process.execPath}). ` +
      '`npm start` fetches Node.js 24 from the npm registry when needed (into .tlsfleet/node24, which every tlsfleet command then uses); or install a supported Node.js and run this again.\n')
    process.exit(2)
  }
  followChild(spawn(node24, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' }))
} else {
  await startCli()
}

async function startCli () {
  // Loading the CLI takes most of a second. Until a command handles signals itself, a stop
  // (SIGTERM, SIGINT) ends the process at once, with status 0 as a stop does (nothing runs yet),
  // and SIGHUP, a reload, is ignored (the start reads everything anyway) instead of killing it
  // (status 129). These handlers stay: removing one drops a signal already caught but not yet
  // dispatched. Once the CLI is loaded (released), a signal that no command handles is raised
  // again with its default action, as if they were not there.
  let released = false
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    const early = () => {
      if (!released) {
        if (signal !== 'SIGHUP') process.exit(0)
      } else if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, early)
        process.kill(process.pid, signal)
      }
    }
    process.on(signal, early)
  }
  globalThis[Symbol.for('tlsfleet.releaseEarlySignals')] = () => { released = true }
  await import('../dist/src/cli/main.js')
}
