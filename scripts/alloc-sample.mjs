#!/usr/bin/env node
// Where a server allocates per connection (docs/benchmarks.md, "Allocations per connection").
// Preloaded with NODE_OPTIONS=--import=scripts/alloc-sample.mjs into a server (the plain Node
// server) or, with ALLOC_SAMPLE_WORKER=1, into a tlsfleet node's workers only: SIGTTIN starts
// V8's sampling heap profiler, objects already collected included (every allocation, not only
// what survives), and counts young-generation collections; SIGTTOU stops and writes
// ALLOC_SAMPLE_OUT-<pid>.heapprofile and .json. Run it as a loop of connections under way, then
// `node scripts/alloc-sample.mjs report FILE.heapprofile CONNECTIONS` prints bytes per
// connection by allocating function and by the innermost tlsfleet frame on the stack.
import fs from 'node:fs'
import inspector from 'node:inspector'
import { PerformanceObserver, constants } from 'node:perf_hooks'

if (process.argv[2] === 'report') {
  report(process.argv[3] ?? '', Number(process.argv[4] ?? 1))
} else if (process.env.ALLOC_SAMPLE_WORKER !== '1' || (process.argv[1] ?? '').endsWith('worker-main.js')) {
  sampleOnSignals()
}

function sampleOnSignals () {
  const session = new inspector.Session()
  session.connect()
  const post = (method, params = {}) => new Promise((resolve, reject) => session.post(method, params, (err, result) => err ? reject(err) : resolve(result)))
  let scavenges = 0
  let counting = false
  new PerformanceObserver((list) => {
    if (counting) scavenges += list.getEntries().filter((e) => e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR).length
  }).observe({ entryTypes: ['gc'] })
  process.on('SIGTTIN', () => {
    scavenges = 0
    counting = true
    post('HeapProfiler.startSampling', { samplingInterval: 64, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
      .catch((err) => process.stderr.write(`alloc-sample: ${err}\n`))
  })
  process.on('SIGTTOU', async () => {
    counting = false
    const { profile } = await post('HeapProfiler.stopSampling')
    const out = `${process.env.ALLOC_SAMPLE_OUT ?? '/tmp/alloc'}-${process.pid}`
    fs.writeFileSync(`${out}.heapprofile`, JSON.stringify(profile))
    fs.writeFileSync(`${out}.json`, JSON.stringify({ scavenges }))
    process.stderr.write(`alloc-sample: wrote ${out}.heapprofile\n`)
  })
}

function report (file, connections) {
  const name = (f) => `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/dist\//, '')}:${f.lineNumber + 1}`
  const ours = (f) => /\/dist\/(src|benchmarks)\//.test(f.url)
  const bySelf = new Map()
  const byOwner = new Map()
  let total = 0
  const walk = (node, stack) => {
    const frames = [...stack, node.callFrame]
    if (node.selfSize > 0) {
      total += node.selfSize
      bySelf.set(name(node.callFrame), (bySelf.get(name(node.callFrame)) ?? 0) + node.selfSize)
      const i = frames.findLastIndex(ours)
      const owner = i < 0 ? '(no tlsfleet frame)' : `${name(frames[i])}${i < frames.length - 1 ? ` -> ${name(frames[i + 1])}` : ''}`
      byOwner.set(owner, (byOwner.get(owner) ?? 0) + node.selfSize)
    }
    for (const child of node.children) walk(child, frames)
  }
  walk(JSON.parse(fs.readFileSync(file, 'utf8')).head, [])
  const top = (map) => [...map].sort((a, b) => b[1] - a[1]).slice(0, 30).map(([k, v]) => `${String(Math.round(v / connections)).padStart(7)}  ${k}`).join('\n')
  process.stdout.write(`${Math.round(total / connections)} bytes per connection\n\nby allocating function:\n${top(bySelf)}\n\nby innermost tlsfleet frame -> what it called:\n${top(byOwner)}\n`)
}
