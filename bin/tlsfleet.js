#!/usr/bin/env node
// Thin launcher: the CLI is compiled from src/cli/main.ts into dist/. The Node.js version is
// checked first and the CLI imported only after it: on an older Node.js the CLI's dependencies
// fail to load with errors that do not say why.
import { isSupportedNode, SUPPORTED_NODE } from './node-support.js'

if (!isSupportedNode(process.versions.node)) {
  process.stderr.write(`tlsfleet needs Node.js ${SUPPORTED_NODE}; this is Node.js ${process.versions.node} (${process.execPath}). ` +
    '`npm start` fetches Node.js 24 from the npm registry when needed; or install a supported Node.js and run this again.\n')
  process.exit(2)
}
await import('../dist/src/cli/main.js')
