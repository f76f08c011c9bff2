import assert from 'node:assert/strict'
import path from 'node:path'
import { test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { eventually, startNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'
import { UdpRecorder } from '../helpers/udp-recorder.js'

test('a sync flood the node cannot keep up with: what the kernel dropped shows as tlsfleet_sync_packets_total{direction="in",result="dropped_kernel"} (and in the datagram counter), and never goes back', async () => {
  const dir = tempDir()
  const [tls, admin, sync] = await freePorts(3) as [number, number, number]
  const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${tls}`, '--cert', makeCertificate(dir, 'drops', ['localhost']),
    '--sync-secret-file', writeFarmSecret(dir), '--sync-listen', `127.0.0.1:${sync}`, '--sync-recv-buffer', '65536',
    '--warm-join-timeout', '0', '--state-dir', path.join(dir, 'state'), '--log-level', 'debug'], { adminPort: admin })
  const flooder = await UdpRecorder.bind()
  const dropped = async (): Promise<number> => await node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'dropped_kernel' })
  const droppedDatagrams = async (): Promise<number> => await node.metric('tlsfleet_sync_datagrams_total', { direction: 'in', result: 'dropped_kernel' })
  try {
    assert.equal(await dropped(), 0)
    assert.equal(await droppedDatagrams(), 0)
    // The buffer was sized as asked (Linux reports twice the size it was given).
    assert.ok(node.logs.some((l) => l.msg === 'sync receive buffer' && l.grantedBytes === 131072), 'the receive buffer was not sized to --sync-recv-buffer')
    // The primary stops reading for a moment (as under a burst it cannot absorb) while 2,000
    // datagrams of 1,200 bytes arrive: a 64 KiB buffer (128 KiB as Linux counts it) holds ~50.
    const pid = node.process.pid as number
    process.kill(pid, 'SIGSTOP')
    try {
      const junk = Buffer.alloc(1200, 0x41)
      for (let i = 0; i < 2000; i++) await flooder.send(junk, sync)
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    let first = 0
    await eventually(async () => { first = await dropped(); return first > 0 }, 10_000, 'kernel drops counted')
    assert.ok(first >= 1000, `only ${first} of 2000 datagrams counted as dropped by the kernel`)
    assert.ok(first <= 2000, `${first} drops counted for 2000 datagrams sent`)
    // Whole datagrams: the same figure under both names.
    assert.equal(await droppedDatagrams(), await dropped())
    // What the node did read was counted as received (and refused: not TF packets).
    assert.ok(await node.metric('tlsfleet_sync_datagrams_total', { direction: 'in', result: 'received' }) >= 1)
    assert.ok(await node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'bad_magic' }) >= 1)
    await new Promise((resolve) => setTimeout(resolve, 1100)) // the kernel's count is read at most once a second
    assert.ok(await dropped() >= first, 'the counter went back')
  } finally {
    flooder.close()
    await node.stop()
  }
})
