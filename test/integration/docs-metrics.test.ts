import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { WorkerMetrics } from '../../src/metrics/worker-metrics.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { docLines, where } from '../helpers/docs.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { startHaproxyNode, type HaproxyNode } from '../helpers/haproxy-node.js'
import { REPO_ROOT, startNode, type RunningNode } from '../helpers/node-process.js'
import { freePort, freePorts } from '../helpers/ports.js'

/**
 * The metric families a node exposes against those the docs name (docs/operations.md and
 * docs/architecture.md, where the per-connection ones are listed), with their labels.
 *
 * Which families a node shows depends on its configuration, so two real nodes cover them all:
 * - a tlsfleet-terminated node with every optional part on: farm sync (--sync-listen), the
 *   session store (--session-store, pointed at a closed port: its families register whether
 *   it answers or not), OCSP stapling (--ocsp-dir) and the agent;
 * - an HAProxy-terminated node (--terminator haproxy) beside a real local HAProxy: the
 *   terminator's own families, and its handshake and cache figures under tlsfleet's names.
 * The families the source declares (`name: 'tlsfleet_...'`) must all show on one of the two,
 * so a part left out of both configurations fails here rather than going unchecked.
 * Labels are the declared `labelNames` (a family with no sample yet shows none on the page),
 * and every sample's labels must be among them.
 */

const dir = tempDir('tlsfleet-docs-metrics-')
let full: RunningNode
let companion: HaproxyNode | undefined
const pages = new Map<string, string>()

before(async () => {
  const [port, admin, sync, agent, closedStore] = await freePorts(5) as [number, number, number, number, number]
  const cert = makeCertificate(dir, 'node', ['localhost'])
  const secret = writeFarmSecret(dir)
  full = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--cert', cert, '--state-dir', path.join(dir, 'state'),
    '--sync-listen', `127.0.0.1:${sync}`, '--sync-secret-file', secret, '--warm-join-timeout', '0',
    '--session-store', `redis://127.0.0.1:${closedStore}/0`, '--ocsp-dir', path.join(dir, 'ocsp'),
    '--agent-listen', `127.0.0.1:${agent}`], { adminPort: admin })
  // One handshake, so the per-connection families have samples whose labels can be read.
  await new Promise<void>((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'localhost' }, () => { socket.end(); resolve() })
    socket.once('error', () => resolve())
    setTimeout(() => { socket.destroy(); resolve() }, 5000).unref()
  })
  pages.set('tlsfleet node (sync, store, ocsp, agent)', await (await fetch(`${full.adminUrl}/metrics`)).text())
  companion = await startHaproxyNode({ dir, name: 'hanode', cert, secret, rotationSeconds: 3600, backendPort: await freePort() })
  pages.set('--terminator haproxy node', await (await fetch(`${companion.node.adminUrl}/metrics`)).text())
})

after(async () => {
  await full?.stop()
  await companion?.stop()
})

/** Family → label names, from the page's samples (`# TYPE` lines name the families). */
function exposed (page: string): Map<string, Set<string>> {
  const families = new Map<string, Set<string>>()
  for (const m of page.matchAll(/^# TYPE (tlsfleet_\w+) /gm)) families.set(m[1] as string, new Set())
  for (const m of page.matchAll(/^(tlsfleet_\w+?)(?:_bucket|_sum|_count)?\{([^}]*)\}/gm)) {
    const family = families.get(m[1] as string) ?? families.get((m[1] as string).replace(/_(bucket|sum|count)$/, ''))
    for (const label of (m[2] as string).matchAll(/(\w+)="/g)) if (label[1] !== 'le') family?.add(label[1] as string)
  }
  return families
}

/** Skips a string literal starting at `i` (its quote), returning the index after it. */
function skipString (text: string, i: number): number {
  const quote = text[i]
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === '\\') j++
    else if (text[j] === quote) return j + 1
  }
  return text.length
}

/**
 * Family → label names, from the metric declarations in src/ (`name: 'tlsfleet_...'`, and
 * `labelNames` in the same object), and from the workers' registry.
 */
function declared (): Map<string, Set<string>> {
  const families = new Map<string, Set<string>>()
  const walk = (d: string): void => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const file = path.join(d, entry.name)
      if (entry.isDirectory()) { walk(file); continue }
      if (!entry.name.endsWith('.ts')) continue
      const text = fs.readFileSync(file, 'utf8')
      for (const m of text.matchAll(/name: '(tlsfleet_\w+)'/g)) {
        // The rest of the declaring object: to the brace that closes it, strings skipped.
        let depth = 1
        let i = (m.index ?? 0) + m[0].length
        for (; i < text.length && depth > 0; i++) {
          const c = text[i] as string
          if (c === '\'' || c === '"' || c === '`') { i = skipString(text, i) - 1; continue }
          if (c === '{') depth++
          else if (c === '}') depth--
        }
        const object = text.slice(m.index, i)
        const labels = /labelNames: \[([^\]]*)\]/.exec(object)?.[1] ?? ''
        const names = new Set([...labels.matchAll(/'(\w+)'/g)].map((l) => l[1] as string))
        const before = families.get(m[1] as string)
        if (before !== undefined) assert.deepEqual(names, before, `${m[1] as string} declared twice with different labels (${path.relative(REPO_ROOT, file)})`)
        families.set(m[1] as string, names)
      }
    }
  }
  walk(path.join(REPO_ROOT, 'src'))
  // The workers' families are made by helpers (byReason, total, FastHistogram): read from their registry.
  for (const metric of new WorkerMetrics().registry.getMetricsAsArray()) {
    if (!metric.name.startsWith('tlsfleet_')) continue
    const shape = metric as unknown as { labelNames?: string[], labelName?: string }
    const names = new Set([...(shape.labelNames ?? []), ...(shape.labelName !== undefined ? [shape.labelName] : [])])
    const before = families.get(metric.name)
    if (before !== undefined) assert.deepEqual(names, before, `${metric.name}: the workers' registry and its declaration in src/ differ`)
    families.set(metric.name, names)
  }
  return families
}

/** Every `tlsfleet_...` the docs name, with the label sets written after it (`{direction,result}`, `{reason="a|b"}`). */
function documented (): Map<string, Array<{ labels: Set<string> | undefined, at: string }>> {
  const out = new Map<string, Array<{ labels: Set<string> | undefined, at: string }>>()
  for (const file of ['docs/operations.md', 'docs/architecture.md']) {
    for (const at of docLines(file)) {
      for (const m of at.text.matchAll(/`(tlsfleet_[a-z_]*[a-z])(\{[^}`]*\})?/g)) {
        const labels = m[2] === undefined ? undefined : new Set([...(m[2]).slice(1, -1).split(',')].map((l) => l.split(/[!=~]/)[0]?.trim() as string).filter((l) => l !== ''))
        out.set(m[1] as string, [...(out.get(m[1] as string) ?? []), { labels, at: where(at) }])
      }
    }
  }
  return out
}

test('every family the source declares is exposed by one of the two nodes, with no label it does not declare', () => {
  const code = declared()
  assert.ok(code.size > 50, `declarations not found (${code.size})`)
  const shown = new Map<string, string>()
  const problems: string[] = []
  for (const [config, page] of pages) {
    for (const [family, labels] of exposed(page)) {
      if (!shown.has(family)) shown.set(family, config)
      const known = code.get(family)
      if (known === undefined) { problems.push(`${family} (${config}): not declared as name: '${family}' in src/`); continue }
      for (const label of labels) if (!known.has(label)) problems.push(`${family} (${config}): label ${label} not among its labelNames`)
    }
  }
  for (const family of code.keys()) if (!shown.has(family)) problems.push(`${family}: declared but exposed by neither node (a configuration missing here?)`)
  assert.deepEqual(problems, [])
})

test('the docs name every exposed family with its labels, and no family that does not exist', () => {
  const code = declared()
  const docs = documented()
  const problems: string[] = []
  for (const [family, labels] of code) {
    const mentions = docs.get(family)
    if (mentions === undefined) { problems.push(`${family}{${[...labels].join(',')}}: not in the docs`); continue }
    const withLabels = mentions.filter((m) => m.labels !== undefined)
    if (labels.size > 0 && !withLabels.some((m) => sameSet(m.labels as Set<string>, labels))) {
      problems.push(`${family}: labels {${[...labels].join(',')}} never written in the docs (mentions: ${mentions.map((m) => `${m.labels === undefined ? '' : `{${[...m.labels].join(',')}}`} at ${m.at}`).join('; ')})`)
    }
    for (const m of withLabels) {
      const extra = [...(m.labels as Set<string>)].filter((l) => !labels.has(l))
      if (extra.length > 0) problems.push(`${m.at}: ${family} has no label ${extra.join(', ')}`)
    }
  }
  for (const [family, mentions] of docs) if (!code.has(family)) problems.push(`${family} (${mentions.map((m) => m.at).join(', ')}): no such metric`)
  assert.deepEqual(problems, [])
})

function sameSet (a: Set<string>, b: Set<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x))
}
