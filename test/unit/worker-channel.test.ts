import assert from 'node:assert/strict'
import cluster, { type Worker as ClusterWorker } from 'node:cluster'
import { once } from 'node:events'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { sendToWorker } from '../../src/node/worker-channel.js'
import { tempDir } from '../helpers/certs.js'

// Real cluster workers. Told to, the fixture closes its IPC channel and lingers, as a worker is
// between its channel closing and its exit (the window in which the primary crashed).
const dir = tempDir('tlsfleet-worker-channel-')
const fixture = path.join(dir, 'worker.mjs')
fs.writeFileSync(fixture, `
import cluster from 'node:cluster'
process.send({ t: 'up' })
process.on('message', (message) => {
  // cluster.worker.disconnect(), not process.disconnect(): a cluster worker whose channel closes
  // unasked exits at once, and this one must linger.
  if (message.t === 'close-channel') { cluster.worker.disconnect(); setTimeout(() => process.exit(0), 3000) }
})
`)
// No execArgv: under node --test the runner's own flags would go to the workers.
cluster.setupPrimary({ exec: fixture, execArgv: [], serialization: 'advanced', silent: true })

async function fork (): Promise<{ worker: ClusterWorker; errors: Error[]; exited: Promise<unknown> }> {
  const worker = cluster.fork()
  // Not events.once: it would also reject on the 'error' events the first test provokes.
  const exited = new Promise((resolve) => worker.once('exit', resolve))
  const errors: Error[] = []
  // Node emits a failed send's error on the worker's ChildProcess, and the cluster Worker
  // re-emits it: uncaught where, as in the primary, nothing listens on the Worker. Counted here.
  worker.on('error', (err: Error) => errors.push(err))
  // Bounded: a fixture that dies before it says it is up fails the test instead of hanging it.
  const [first] = await Promise.race([once(worker, 'message'), exited.then(() => { throw new Error('the fixture worker exited before it was up') })]) as [unknown]
  assert.deepEqual(first, { t: 'up' })
  return { worker, errors, exited }
}

const report = { t: 'report-request', req: 1 } as const

test('a worker whose channel has closed but which has not exited: the send is skipped, no error is emitted', async () => {
  const { worker, errors, exited } = await fork()
  worker.send({ t: 'close-channel' })
  await once(worker, 'disconnect')
  assert.equal(worker.isDead(), false, 'the worker is still alive: this is the window')

  // What the primary did before: a send without a callback emits ERR_IPC_CHANNEL_CLOSED.
  worker.send(report)
  await sleep(50)
  assert.equal(errors.length, 1)
  assert.equal((errors[0] as NodeJS.ErrnoException).code, 'ERR_IPC_CHANNEL_CLOSED')

  errors.length = 0
  assert.equal(sendToWorker(worker, report), false)
  await sleep(50)
  assert.deepEqual(errors, [])
  worker.process.kill('SIGKILL')
  await exited
})

test('sends to a worker from its SIGKILL until its exit event emit no error, written or skipped', async () => {
  const { worker, errors, exited } = await fork()
  let gone = false
  void exited.then(() => { gone = true })
  worker.process.kill('SIGKILL')
  let sent = 0
  let skipped = 0
  const deadline = Date.now() + 10_000
  while (!gone && Date.now() < deadline) {
    if (sendToWorker(worker, report)) sent++
    else skipped++
    await new Promise((resolve) => setImmediate(resolve))
  }
  await exited
  await sleep(50)
  assert.deepEqual(errors, [])
  // The first send follows the kill at once, while the channel still looks open: it is written
  // to a dead peer, and its failure (if any) goes to the callback.
  assert.ok(sent >= 1, `sent ${sent}, skipped ${skipped}`)
})
