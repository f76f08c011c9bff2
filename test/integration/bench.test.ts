import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { runBench } from '../helpers/bench.js'
import { tempDir } from '../helpers/certs.js'

test('tlsfleet bench runs a tiny bounded profile and its JSON has handshakes/s, latency percentiles, errors and server CPU', async () => {
  const args = ['--targets', 'tlsfleet,haproxy', '--profiles', 'full-1.2,resume-1.2-id,resume-1.3-ticket', '--certs', 'ecdsa',
    '--duration', '2', '--warmup', '1', '--count', '200', '--processes', '1', '--concurrency', '4', '--json', '--quiet']
  const started = Date.now()
  const { code, stdout, stderr } = await runBench(args, 80_000)
  assert.equal(code, 0, stderr)
  assert.ok(Date.now() - started < 80_000)
  const report = JSON.parse(stdout) as { machine: { cores: number }; settings: Record<string, unknown>; handshake: Array<Record<string, unknown>> }
  assert.ok(report.machine.cores >= 1)
  assert.equal(report.settings.warmupSeconds, 1)
  assert.equal(report.handshake.length, 6)
  for (const row of report.handshake) {
    for (const field of ['cert', 'target', 'profile', 'handshakes', 'handshakesPerSecond', 'latencyMs', 'errors', 'resumedShare', 'serverCpuSeconds', 'serverCpuUsPerHandshake', 'serverCpuSecondsPer1000']) {
      assert.ok(field in row, `missing ${field} in ${JSON.stringify(row)}`)
    }
    const latency = row.latencyMs as { p50: number; p95: number; p99: number }
    assert.ok(latency.p50 > 0 && latency.p50 <= latency.p95 && latency.p95 <= latency.p99, JSON.stringify(latency))
    assert.ok((row.handshakes as number) > 0 && (row.handshakes as number) <= 200, JSON.stringify(row))
    assert.ok((row.serverCpuSeconds as number) > 0, `no server CPU measured: ${JSON.stringify(row)}`)
    assert.equal(row.errors, 0)
    // The breakdown: tlsfleet's workers (children) do the handshakes; HAProxy -db is one process.
    const split = row.serverCpuSplitUsPerHandshake as { rootMain: number; rootOther: number; childrenMain: number; childrenOther: number }
    const splitTotal = split.rootMain + split.rootOther + split.childrenMain + split.childrenOther
    assert.ok(splitTotal > 0 && splitTotal <= (row.serverCpuUsPerHandshake as number) * 1.5 + 100, `split ${JSON.stringify(split)} against ${String(row.serverCpuUsPerHandshake)}`)
    if (row.target === 'tlsfleet') assert.ok(split.childrenMain > split.rootMain, `tlsfleet: ${JSON.stringify(split)}`)
    if (row.target === 'haproxy') assert.equal(split.childrenMain + split.childrenOther, 0, `haproxy: ${JSON.stringify(split)}`)
  }
  // Resumption profiles really resume, TLS 1.3 included (our own client, not s_time -reuse).
  for (const row of report.handshake.filter((r) => String(r.profile).startsWith('resume'))) {
    assert.ok((row.resumedShare as number) >= 0.95, `${String(row.target)} ${String(row.profile)} resumed ${String(row.resumedShare)}`)
  }
  assert.equal(report.handshake.find((r) => r.profile === 'full-1.2')?.resumedShare, null)
})

test('Ctrl-C mid-run: the bench stops (status 130) and removes its temporary files, private keys included', async () => {
  const tmp = tempDir()
  let signalled = false
  const { code, stderr } = await runBench(['--suites', 'handshake', '--targets', 'node', '--profiles', 'full-1.2', '--certs', 'ecdsa', '--duration', '30', '--processes', '1'], 60_000, {
    env: { TMPDIR: tmp },
    // Once the suite is under way (the certificate is in the temporary directory by then).
    onStderr: (text, child) => { if (!signalled && text.includes('handshake suite:')) { signalled = true; setTimeout(() => child.kill('SIGINT'), 1500) } }
  })
  assert.ok(signalled, stderr)
  assert.equal(code, 130, stderr)
  assert.match(stderr, /stopped by SIGINT; its temporary files are removed/)
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.startsWith('tlsfleet-bench-')), [])
})

test('the store suite runs against a real redis-server and reports cross-node resumption, lookup latency and sizes', async () => {
  const { code, stdout, stderr } = await runBench(['--suites', 'store', '--count', '20', '--json', '--quiet'], 120_000)
  assert.equal(code, 0, stderr)
  const store = (JSON.parse(stdout) as { store: { crossNode: { samples: number; resumed: number }; lookupUs: { samples: number; p50: number; p99: number }; handshakeMs: { storeResume: { p50: number } }; bytes: { der: number; storeValue: number; syncPacket: number } } }).store
  assert.equal(store.crossNode.samples, 20)
  assert.ok(store.crossNode.resumed >= 10, `only ${store.crossNode.resumed}/20 resumed through the store`)
  assert.ok(store.lookupUs.samples > 0 && store.lookupUs.p50 > 0 && store.lookupUs.p50 <= store.lookupUs.p99, JSON.stringify(store.lookupUs))
  assert.ok(store.handshakeMs.storeResume.p50 > 0)
  // A sealed value is the DER plus 34 bytes (header, nonce, creation time, tag).
  assert.equal(store.bytes.storeValue, store.bytes.der + 34)
  assert.ok(store.bytes.syncPacket > store.bytes.der)
})

test('the memory suite: what L2 counts against --cache-max-bytes matches the RSS a running process pays per session, within 25%', async () => {
  const { code, stdout, stderr } = await runBench(['--suites', 'memory', '--sessions', '100000', '--json', '--quiet'], 150_000)
  assert.equal(code, 0, stderr)
  const rows = (JSON.parse(stdout) as { memory: Array<{ mode: string; derBytes: number; sessions: number; rssBytesPerSession: number; countedBytesPerSession: number; countedOverMeasured: number }> }).memory
  const running = rows.filter((r) => r.mode === 'running')
  assert.deepEqual(running.map((r) => r.derBytes), [130, 160, 400, 1000])
  for (const row of running) {
    assert.equal(row.sessions, 100_000)
    // The fit (session-store.ts) is within 10% on a quiet run; 25% leaves room for a shared machine.
    assert.ok(row.countedOverMeasured >= 0.75 && row.countedOverMeasured <= 1.33, `DER ${row.derBytes}: counted ${row.countedBytesPerSession} B, RSS ${row.rssBytesPerSession} B per session`)
  }
  // Settled after full collections an entry takes less than at work: the count bounds both.
  for (const row of rows.filter((r) => r.mode === 'settled')) assert.ok(row.countedBytesPerSession >= row.rssBytesPerSession, JSON.stringify(row))
})

test('the soak suite, 15 s: worker kills, a sync flood, RSS of every process, counters and the agent checked, a summary with pass/fail', async () => {
  const started = Date.now()
  const { code, stdout, stderr } = await runBench(['--suites', 'soak', '--soak-seconds', '15', '--processes', '1', '--concurrency', '2', '--json', '--quiet'], 90_000)
  assert.equal(code, 0, `${stderr}\n${stdout}`)
  assert.ok(Date.now() - started < 90_000)
  const soak = (JSON.parse(stdout) as { soak: { seconds: number; workers: number; handshakes: number; resumed: number; workerKills: number; syncFlood: { datagrams: number; rejectedCounted: number; droppedKernel: number }; scrapes: number; agentProbes: number; rssBoundMb: number; processes: Array<{ role: string; maxMb: number; killed: boolean }>; checks: Array<{ check: string; pass: boolean; detail: string; warnOnly?: boolean }> } }).soak
  assert.equal(soak.seconds, 15)
  // Kills every third of a short run, none in its last seconds: two.
  assert.equal(soak.workerKills, 2)
  assert.ok(soak.handshakes > 0 && soak.resumed > 0 && soak.resumed < soak.handshakes, `mixed: ${soak.resumed}/${soak.handshakes} resumed`)
  // Every junk datagram is rejected by the node or dropped by the kernel (counted too); none is taken.
  assert.ok(soak.syncFlood.datagrams > 0 && soak.syncFlood.rejectedCounted > 0, JSON.stringify(soak.syncFlood))
  assert.ok(soak.syncFlood.rejectedCounted + soak.syncFlood.droppedKernel <= soak.syncFlood.datagrams, JSON.stringify(soak.syncFlood))
  assert.ok(soak.scrapes >= 5 && soak.agentProbes >= 10, `${soak.scrapes} scrapes, ${soak.agentProbes} agent checks`)
  // The primary, the two workers killed, the workers that replaced them (and the one never killed).
  assert.equal(soak.processes.filter((p) => p.role === 'primary').length, 1)
  assert.equal(soak.processes.filter((p) => p.killed).length, 2)
  assert.ok(soak.processes.filter((p) => p.role === 'worker').length >= soak.workers + 2)
  for (const p of soak.processes) assert.ok(p.maxMb > 8 && p.maxMb <= soak.rssBoundMb, JSON.stringify(p))
  assert.deepEqual(soak.checks.map((c) => c.check), [
    `RSS of every process under ${soak.rssBoundMb} MiB`, 'no counter on /metrics went backwards', 'no float sum stepped back by rounding', 'the agent answered every check',
    'every killed worker replaced within 15 s', 'handshakes served after the last kill', 'the sync flood was read and counted as rejected'
  ])
  for (const c of soak.checks.filter((c) => c.warnOnly !== true)) assert.ok(c.pass, `${c.check}: ${c.detail}`)
})
