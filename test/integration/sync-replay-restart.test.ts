import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { writeFarmSecret } from '../helpers/farm.js'
import { childPids, eventually, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient } from '../helpers/openssl.js'
import { freePorts } from '../helpers/ports.js'
import { UdpRecorder } from '../helpers/udp-recorder.js'

// Node N (127.0.0.1) sends to node R (127.0.0.2) and to a test socket T, which records what a
// peer receives from N: N's warm-join request and a New. R is then restarted (cleanly, after a
// kill -9, and with its replay state removed) and T replays both into it, as an attacker who
// captured them would. The nodes allow 30 s of clock skew (--sync-max-skew 30), so after a clean
// restart the captured packets are still judged by the restored replay window, not by their date.
const dir = tempDir()
let cert: string
let secret: string
let ports: number[]
let recorder: UdpRecorder
let n: RunningNode
let r: RunningNode
const N_HOST = '127.0.0.1'
const R_HOST = '127.0.0.2'
const syncOf = (i: number): number => ports[i * 3 + 2] as number

function args (i: number, host: string, peers: string[], skew = 30): string[] {
  return ['--workers', '1', '--listen', `${host}:${ports[i * 3] as number}`, '--cert', cert, '--node-id', `replay-node${i + 1}`,
    '--sync-secret-file', secret, '--sync-listen', `${host}:${syncOf(i)}`, ...peers.flatMap((p) => ['--sync-peer', p]),
    '--warm-join-timeout', '1', '--state-dir', path.join(dir, `state${i + 1}`), '--sync-max-skew', String(skew)]
}
const startR = async (skew?: number): Promise<RunningNode> => await startNode(args(1, R_HOST, [`${N_HOST}:${syncOf(0)}`], skew), { adminPort: ports[1 * 3 + 1] as number })

before(async () => {
  cert = makeCertificate(dir, 'replay', ['localhost'])
  secret = writeFarmSecret(dir)
  ports = await freePorts(6)
  recorder = await UdpRecorder.bind()
  r = await startR()
  n = await startNode(args(0, N_HOST, [`${R_HOST}:${syncOf(1)}`, recorder.address]), { adminPort: ports[1] as number })
})

after(async () => {
  recorder?.close()
  await Promise.all([n?.stop(), r?.stop()])
})

const fromN = (): string => `${N_HOST}:${syncOf(0)}`
const fromR = (): string => `${R_HOST}:${syncOf(1)}`
const refused = async (node: RunningNode): Promise<number> =>
  await node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'replay' }) + await node.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'before_start' })

/** The op byte of a plain v2 packet (offset 4). */
const captured = (op: number): Buffer => {
  const found = recorder.from(fromN()).find((d) => d.packet[4] === op)
  assert.ok(found !== undefined, `T recorded no packet with op ${op} from N`)
  return found.packet
}

let request: Buffer
let update: Buffer

test('a peer sees the warm-join request and a New; the first request only earned a challenge, the echo the snapshot', async () => {
  // N's warm join asked R and T at its start: R challenged (a datagram the size of the request), N echoed, R answered.
  request = captured(3)
  assert.equal(request.length, 83)
  assert.equal(await r.metric('tlsfleet_sync_snapshot_requests_total', { result: 'challenged' }), 1)
  assert.equal(await r.metric('tlsfleet_sync_snapshot_requests_total', { result: 'answered' }), 1)
  const join = n.logs.find((l) => l.msg === 'warm join done')
  assert.ok(join !== undefined, 'N logged its warm join')
  const accepted = await r.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' })
  const first = await sClient({ host: N_HOST, port: ports[0] as number, tls: '1.2', sessOut: path.join(dir, 'n.pem'), extra: ['-no_ticket'] })
  assert.equal(first.reused, false, first.output)
  await eventually(() => recorder.from(fromN()).some((d) => d.packet[4] === 1), 5000, 'the New at T')
  update = captured(1)
  await eventually(async () => await r.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' }) > accepted, 5000, 'R accepted the New')
})

async function replayInto (node: RunningNode): Promise<void> {
  const before = await refused(node)
  const challenged = await node.metric('tlsfleet_sync_snapshot_requests_total', { result: 'challenged' })
  const seen = recorder.from(fromR()).length
  await recorder.send(request, syncOf(1), R_HOST)
  await recorder.send(update, syncOf(1), R_HOST)
  await eventually(async () => await refused(node) === before + 2, 5000, 'both replays refused and counted')
  // Nothing goes back to the replayer: not even a challenge (the request was refused before the gate).
  await new Promise((resolve) => setTimeout(resolve, 500))
  assert.equal(recorder.from(fromR()).length, seen, 'R sent something to the replaying address')
  assert.equal(await node.metric('tlsfleet_sync_snapshot_requests_total', { result: 'challenged' }), challenged)
  assert.equal(await node.metric('tlsfleet_sync_snapshot_requests_total', { result: 'answered' }), 0)
}

test('after a clean restart of R, the captured request and New are refused and counted; nothing is sent back', async () => {
  assert.equal(await r.stop(), 0)
  r = await startR()
  assert.ok(r.logs.some((l) => l.msg === 'sync replay state loaded' && l.previous === 'clean'), 'R read its replay state from the clean stop')
  await replayInto(r)
  // Dated within the skew of R's start: refused by the replay window R restored, not by their date.
  assert.equal(await r.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'replay' }), 2)
})

test('after a kill -9 of R, the same: refused and counted; the warm join still works and N\'s new updates get through', async () => {
  const workers = childPids(r.process.pid as number)
  await r.stop('SIGKILL')
  await eventually(() => workers.every((pid) => { try { process.kill(pid, 0); return false } catch { return true } }), 10_000, 'R\'s workers gone')
  r = await startR()
  assert.ok(r.logs.some((l) => l.msg === 'sync replay state loaded' && l.previous === 'unclean'), 'R saw it had not stopped in order')
  const join = r.logs.find((l) => l.msg === 'warm join done')
  assert.ok(join !== undefined && Number(join.sessions) >= 1, `R's warm join after the crash brought nothing: ${JSON.stringify(join)}`)
  await replayInto(r)
  // No complete window after a crash: refused by date, up to the ceiling the old process had written.
  assert.equal(await r.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'before_start' }), 2)
  // Updates dated after the floor R carried over from before the crash are accepted again (a few seconds at most).
  const accepted = await r.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' })
  await eventually(async () => {
    await sClient({ host: N_HOST, port: ports[0] as number, tls: '1.2', extra: ['-no_ticket'] })
    return await r.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'accepted' }) > accepted
  }, 15_000, 'a fresh New from N accepted by R')
})

test('with R\'s replay state gone (a first start, or a wiped --state-dir), the same packets are refused as before_start: dated before R\'s start minus --sync-max-skew', async () => {
  assert.equal(await r.stop(), 0)
  const state = path.join(dir, 'state2')
  const files = fs.readdirSync(state).filter((f) => f.startsWith('sync-replay-'))
  assert.equal(files.length, 1, `R keeps one replay state file: ${files.join(', ')}`)
  fs.rmSync(path.join(state, files[0] as string))
  // 1 s of skew: the captured packets are older than that (each restart above took longer).
  r = await startR(1)
  assert.ok(r.logs.some((l) => l.msg === 'sync replay state loaded' && l.previous === 'none'), 'R started without a replay state')
  const beforeStart = await r.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'before_start' })
  await replayInto(r)
  assert.equal(await r.metric('tlsfleet_sync_packets_total', { direction: 'in', result: 'before_start' }), beforeStart + 2)
})
