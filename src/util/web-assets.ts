import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The package's browser files: `web/` (the dashboard and the report pages, plain scripts with
 * no build step) and uPlot's files from node_modules. Both ship with the package, so a node
 * or a report never needs anything from outside the machine.
 */
export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../web')

const require = createRequire(import.meta.url)

/** The browser files the pages use, by a short name. */
export const WEB_ASSETS = {
  'uplot.js': () => require.resolve('uplot/dist/uPlot.iife.min.js'),
  'uplot.css': () => require.resolve('uplot/dist/uPlot.min.css'),
  'charts.js': () => path.join(WEB_DIR, 'charts.js'),
  'common.css': () => path.join(WEB_DIR, 'common.css'),
  'dashboard.html': () => path.join(WEB_DIR, 'dashboard', 'index.html'),
  'dashboard.js': () => path.join(WEB_DIR, 'dashboard', 'dashboard.js'),
  'dashboard.css': () => path.join(WEB_DIR, 'dashboard', 'dashboard.css'),
  'report.html': () => path.join(WEB_DIR, 'report', 'report.html'),
  'report.js': () => path.join(WEB_DIR, 'report', 'report.js'),
  'report.css': () => path.join(WEB_DIR, 'report', 'report.css')
} as const

export type WebAsset = keyof typeof WEB_ASSETS

/** Read one asset; a missing file means a broken installation, and the error names it. */
export function readWebAsset (name: WebAsset): string {
  const file = WEB_ASSETS[name]()
  try {
    return fs.readFileSync(file, 'utf8')
  } catch (err) {
    throw new Error(`tlsfleet's web file ${file} is missing (${(err as Error).message}); reinstall the package`, { cause: err })
  }
}
