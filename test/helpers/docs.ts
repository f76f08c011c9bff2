import fs from 'node:fs'
import path from 'node:path'
import { REPO_ROOT } from './node-process.js'

/**
 * Small, forgiving readers of the Markdown docs for the docs-truth tests: they find tables and
 * code spans wherever the formatting puts them, and leave the strictness to the tests, which
 * compare names exactly.
 */

export interface DocLine { file: string; line: number; text: string }

export function readDoc (relative: string): string {
  return fs.readFileSync(path.join(REPO_ROOT, relative), 'utf8')
}

/** The lines of the section under `heading` (a `## ` line, matched by its start), to the next heading of that level or above. */
export function sectionLines (relative: string, heading: string): DocLine[] {
  const lines = readDoc(relative).split('\n')
  const start = lines.findIndex((l) => l.startsWith(heading))
  if (start < 0) throw new Error(`${relative}: no heading starting with ${JSON.stringify(heading)}`)
  const level = /^#+/.exec(heading)?.[0].length ?? 2
  const out: DocLine[] = []
  for (let i = start + 1; i < lines.length; i++) {
    const text = lines[i] as string
    const h = /^(#+) /.exec(text)
    if (h !== null && (h[1] as string).length <= level) break
    out.push({ file: relative, line: i + 1, text })
  }
  return out
}

export function docLines (relative: string): DocLine[] {
  return readDoc(relative).split('\n').map((text, i) => ({ file: relative, line: i + 1, text }))
}

/** A Markdown table row's cells, `\|` kept as `|`; undefined for a line that is no row or is the `|---|` rule. */
export function tableCells (text: string): string[] | undefined {
  if (!text.startsWith('|') || /^\|[\s:|-]+\|?\s*$/.test(text)) return undefined
  const cells = text.replace(/\\\|/g, '\u0000').split('|').slice(1, -1)
  return cells.map((c) => c.replace(/\u0000/g, '|').trim())
}

/** The rows of every table in `lines` whose header's first cell is `firstHeader`, each with where it is. */
export function tableRows (lines: DocLine[], firstHeader: string): Array<{ cells: string[], at: DocLine }> {
  const rows: Array<{ cells: string[], at: DocLine }> = []
  let inTable = false
  for (const at of lines) {
    if (!at.text.startsWith('|')) { inTable = false; continue }
    const cells = tableCells(at.text)
    if (cells === undefined) continue
    if (!inTable) { inTable = cells[0] === firstHeader; continue }
    rows.push({ cells, at })
  }
  return rows
}

/** Code spans of a piece of Markdown (backticks, single or double). */
export function codeSpans (text: string): string[] {
  return [...text.matchAll(/(`+)([^`]+?)\1/g)].map((m) => (m[2] as string).trim())
}

/**
 * Every code span of a document with the line it starts on; fenced blocks are left out, and a
 * span broken over two lines (Markdown allows it within a paragraph) is read whole.
 */
export function docCodeSpans (relative: string): Array<{ span: string, at: DocLine }> {
  const out: Array<{ span: string, at: DocLine }> = []
  const lines = docLines(relative)
  let fenced = false
  let paragraph: DocLine[] = []
  const flush = (): void => {
    if (paragraph.length === 0) return
    const joined = paragraph.map((l) => l.text).join('\n')
    for (const m of joined.matchAll(/(`+)([^`]+?)\1/g)) {
      const lineIndex = joined.slice(0, m.index).split('\n').length - 1
      out.push({ span: (m[2] as string).replace(/\s*\n\s*/g, ' ').trim(), at: paragraph[lineIndex] as DocLine })
    }
    paragraph = []
  }
  for (const l of lines) {
    if (l.text.startsWith('```')) { flush(); fenced = !fenced; continue }
    if (fenced) continue
    // A table row is a paragraph of its own: a span never runs from one row into the next.
    if (l.text.trim() === '' || l.text.startsWith('|')) { flush(); if (l.text.startsWith('|')) { paragraph = [l]; flush() } continue }
    paragraph.push(l)
  }
  flush()
  return out
}

export function where (at: DocLine): string { return `${at.file}:${at.line}` }
