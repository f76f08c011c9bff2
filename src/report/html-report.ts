import fs from 'node:fs'
import path from 'node:path'
import { UsageError } from '../errors.js'
import { readWebAsset, type WebAsset } from '../util/web-assets.js'
import type { ReportDocument } from './report-document.js'

const SCRIPTS: WebAsset[] = ['uplot.js', 'charts.js', 'report.js']
const STYLES: WebAsset[] = ['uplot.css', 'common.css', 'report.css']

/** JSON that can sit inside a <script> element: no "<" can close it or open a comment. */
function scriptJson (value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')
}

function escapeHtml (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** Inlined code must not end its own element early. */
function inline (names: WebAsset[], closing: string, separator: string): string {
  return names.map((name) => {
    const text = readWebAsset(name)
    if (text.toLowerCase().includes(closing) || text.includes('<!--')) throw new Error(`web file ${name} cannot be inlined: it contains "${closing}" or "<!--"`)
    return text
  }).join(separator)
}

/**
 * One self-contained HTML file: the report's charts (uPlot and tlsfleet's chart code inlined),
 * its document and the raw JSON report inline. It opens offline, from a file, anywhere.
 */
export function renderHtmlReport (doc: ReportDocument, raw: unknown): string {
  const template = readWebAsset('report.html')
  const parts: Record<string, string> = {
    '{{TITLE}}': escapeHtml(doc.title),
    '{{STYLE}}': inline(STYLES, '</style', '\n'),
    '{{DOCUMENT}}': scriptJson(doc),
    '{{RAW}}': scriptJson(raw),
    '{{SCRIPT}}': inline(SCRIPTS, '</script', '\n;\n')
  }
  // One pass, so text inside one part is never taken for another placeholder.
  return template.replace(/\{\{[A-Z]+\}\}/g, (key) => parts[key] ?? key)
}

/**
 * Refuse a --report path that cannot be written before a long run starts, naming the option
 * and the problem; nothing is written yet.
 */
export function checkReportPath (file: string, option = '--report'): string {
  const resolved = path.resolve(file)
  const dir = path.dirname(resolved)
  let stat: fs.Stats
  try {
    stat = fs.statSync(dir)
  } catch {
    throw new UsageError(`${option} ${JSON.stringify(file)}: the folder ${dir} does not exist`)
  }
  if (!stat.isDirectory()) throw new UsageError(`${option} ${JSON.stringify(file)}: ${dir} is not a folder`)
  try {
    fs.accessSync(dir, fs.constants.W_OK)
  } catch {
    throw new UsageError(`${option} ${JSON.stringify(file)}: the folder ${dir} is not writable`)
  }
  if (fs.existsSync(resolved) && !fs.statSync(resolved).isFile()) throw new UsageError(`${option} ${JSON.stringify(file)}: exists and is not a regular file`)
  return resolved
}

export function writeHtmlReport (file: string, doc: ReportDocument, raw: unknown): void {
  fs.writeFileSync(file, renderHtmlReport(doc, raw))
}
