import assert from 'node:assert/strict'
import fs from 'node:fs'
import { test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { childPids, eventually, startNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

const dir = tempDir()
const cert = makeCertificate(dir, 'n', ['localhost'])

/** The nice value of a process (field 19 of /proc/PID/stat, after the command in parentheses). */
function niceOf (pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
}

test('workers run --worker-nice steps below the primary, a replacement too; by default they run level with it', async () => {
  const [port, admin] = await freePorts(2) as [number, number]
  const node = await startNode(['--workers', '2', '--worker-nice', '10', '--listen', `127.0.0.1:${port}`, '--cert', cert], { adminPort: admin })
  try {
    const primary = node.process.pid as number
    const workers = childPids(primary)
    assert.equal(workers.length, 2)
    for (const pid of workers) assert.equal(niceOf(pid), Math.min(19, niceOf(primary) + 10), `worker ${pid}`)
    process.kill(workers[0] as number, 'SIGKILL')
    let replacement: number | undefined
    await eventually(() => (replacement = childPids(primary).find((pid) => !workers.includes(pid))) !== undefined, 10_000, 'a replacement worker')
    // The primary lowers it on cluster's 'fork' event, which may come just after the process shows up here.
    const wanted = Math.min(19, niceOf(primary) + 10)
    await eventually(() => niceOf(replacement as number) === wanted, 5000, `the replacement worker at nice ${wanted}`)
  } finally {
    await node.stop()
  }

  const [port2, admin2] = await freePorts(2) as [number, number]
  const level = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port2}`, '--cert', cert], { adminPort: admin2 })
  try {
    const primary = level.process.pid as number
    assert.deepEqual(childPids(primary).map(niceOf), [niceOf(primary)])
  } finally {
    await level.stop()
  }
})
