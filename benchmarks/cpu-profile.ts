import fs from 'node:fs'
import path from 'node:path'
import { table } from './report.js'

/**
 * Summaries of V8 CPU profiles (`node --cpu-prof`), as `tlsfleet bench --cpu-prof DIR` writes
 * them for the servers it starts: self time by function and by part (tlsfleet's own code, each
 * library, Node's JS by module, native work entered from JS, GC), per handshake. Native work
 * shows as the self time of the JS function that called into it: OpenSSL's handshake appears
 * under `loadSession`/`initRead` when Node's ClientHello parser or a pre-read socket started it,
 * and under `(program)` when libuv did.
 *
 * The profiler samples the main thread by wall time while it runs (an interrupt every
 * `--cpu-prof-interval` µs): time the process spends preempted counts against the function it
 * was in. On a busy machine compare shares, not absolute µs.
 */

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

export interface ProfileSummary {
  file: string
  /** µs the thread was busy (not idle), module loading left out. */
  busyUs: number
  /** µs of self time by function ("name file:line"). */
  byFunction: Map<string, number>
}

/**
 * The profile in `dir` of the process that terminated TLS (tlsfleet's worker, not its primary,
 * which loads more modules at start): the one with the most time in Node's TLS socket code.
 */
export function terminatorProfile (dir: string): ProfileSummary | undefined {
  let best: { summary: ProfileSummary; tlsUs: number } | undefined
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const summary = summarise(path.join(dir, file))
    let tlsUs = 0
    for (const [key, us] of summary.byFunction) if (key.includes('node:internal/tls/wrap')) tlsUs += us
    if (best === undefined || tlsUs > best.tlsUs) best = { summary, tlsUs }
  }
  return best?.summary
}

/** Module loading and bootstrap: paid once at start, not per handshake; left out of the sums. */
function isStartup (frame: { functionName: string; url: string }): boolean {
  return /^node:internal\/(modules|bootstrap)\//.test(frame.url) ||
    ['wrapSafe', 'compileSourceTextModule', 'internalModuleStat', 'readFileUtf8', 'compileForInternalLoader', 'realpathSync', 'lstat', 'internalModuleReadJSON'].includes(frame.functionName)
}

export function summarise (file: string): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const byFunction = new Map<string, number>()
  let busyUs = 0
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)?.callFrame
    const us = profile.timeDeltas[i] ?? 0
    if (frame === undefined || frame.functionName === '(idle)' || isStartup(frame)) return
    const where = frame.url === '' ? '' : ` ${shortUrl(frame.url)}:${frame.lineNumber + 1}`
    const key = `${frame.functionName === '' ? '(anonymous)' : frame.functionName}${where}`
    byFunction.set(key, (byFunction.get(key) ?? 0) + us)
    busyUs += us
  })
  return { file, busyUs, byFunction }
}

function shortUrl (url: string): string {
  return url.replace(/^file:\/\/.*?\/(dist\/|node_modules\/)/, '$1')
}

/** The part of the code a function belongs to. */
export function partOf (key: string): string {
  const where = key.slice(key.lastIndexOf(' ') + 1)
  if (key.startsWith('(garbage collector)')) return 'V8 garbage collector'
  if (key.startsWith('(program)')) return 'native, entered from libuv (TLS records, sockets)'
  if (where.startsWith('dist/src/')) return `tlsfleet ${where.slice('dist/src/'.length).replace(/\.js:.*/, '')}`
  if (where.startsWith('dist/benchmarks/')) return 'the plain server (benchmarks/servers)'
  if (where.startsWith('node_modules/')) return where.slice('node_modules/'.length).split('/')[0] as string
  if (where.startsWith('node:')) {
    const module = where.replace(/^node:(internal\/)?/, '').replace(/:\d+$/, '')
    if (/^tls\/wrap/.test(module) && /^(loadSession|initRead|TLSSocket\._wrapHandle|done|TLSSocket\._init|onnewsession|requestOCSP) /.test(key)) return 'OpenSSL and Node TLS native, entered from JS'
    if (/^(net|stream_base_commons)/.test(module)) return 'Node net (JS and its system calls)'
    if (/^streams\//.test(module)) return 'Node streams'
    if (/^tls/.test(module)) return 'Node tls (JS)'
    return `Node ${module.split('/')[0] as string}`
  }
  return 'native, entered from JS (other)'
}

/**
 * Two profiles side by side, in µs per handshake: by part, then the functions that differ most.
 * `a` is usually tlsfleet's worker and `b` the plain Node server.
 */
export function compareTable (a: { label: string; summary: ProfileSummary; handshakes: number }, b: { label: string; summary: ProfileSummary; handshakes: number }, functions = 12): string {
  const per = (s: { summary: ProfileSummary; handshakes: number }, pick: (key: string) => boolean): number => {
    let us = 0
    for (const [key, v] of s.summary.byFunction) if (pick(key)) us += v
    return us / Math.max(1, s.handshakes)
  }
  const parts = new Set([...a.summary.byFunction.keys(), ...b.summary.byFunction.keys()].map(partOf))
  const partRows = [...parts].map((part) => {
    const x = per(a, (k) => partOf(k) === part)
    const y = per(b, (k) => partOf(k) === part)
    return { part, x, y }
  }).sort((p, q) => (q.x + q.y) - (p.x + p.y))
  const total = (s: typeof a): number => s.summary.busyUs / Math.max(1, s.handshakes)
  const out = [
    table(['part', `${a.label} µs/hs`, `${b.label} µs/hs`, 'difference'], [
      ['all (busy)', total(a).toFixed(0), total(b).toFixed(0), (total(a) - total(b)).toFixed(0)],
      ...partRows.filter((p) => p.x >= 0.5 || p.y >= 0.5).map((p) => [p.part, p.x.toFixed(1), p.y.toFixed(1), (p.x - p.y).toFixed(1)])
    ])
  ]
  const keys = new Set([...a.summary.byFunction.keys(), ...b.summary.byFunction.keys()])
  const fnRows = [...keys].map((key) => ({ key, x: per(a, (k) => k === key), y: per(b, (k) => k === key) }))
    .sort((p, q) => Math.abs(q.x - q.y) - Math.abs(p.x - p.y)).slice(0, functions)
  out.push('', table(['function (self time)', `${a.label} µs/hs`, `${b.label} µs/hs`, 'difference'],
    fnRows.map((r) => [r.key, r.x.toFixed(1), r.y.toFixed(1), (r.x - r.y).toFixed(1)])))
  return out.join('\n')
}
