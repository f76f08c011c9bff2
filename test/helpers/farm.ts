import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { farmKeyId } from '../../src/sync/farm-secret.js'
import { makeCertificate, tempDir } from './certs.js'
import { startNode, type RunningNode } from './node-process.js'
import { freePorts } from './ports.js'
import { sClient, type SClientResult } from './openssl.js'

export interface FarmNode { node: RunningNode; host: string; port: number; sync: number; args: string[]; admin: number }

/**
 * Key ids of the secrets this test process made. A key id is one byte: two random secrets share
 * one in 1 of 256 pairs, and a node given both refuses to start ("its key id collides"), which a
 * test holding two secrets at once (a change-over, a wrong-secret peer) took for its own failure.
 */
const keyIdsMade = new Set<number>()

/** A farm secret as an operator makes it (`openssl rand -base64 48`, as text), its key id unlike those made before in this process. */
export function newFarmSecretText (): string {
  if (keyIdsMade.size >= 128) keyIdsMade.clear()
  for (;;) {
    const text = crypto.randomBytes(48).toString('base64') + '\n'
    const id = farmKeyId(Buffer.from(text.trimEnd()))
    if (keyIdsMade.has(id)) continue
    keyIdsMade.add(id)
    return text
  }
}

/** A farm secret file as an operator makes it: random, mode 0600 (newFarmSecretText). */
export function writeFarmSecret (dir: string, name = 'farm.key'): string {
  const file = path.join(dir, name)
  fs.writeFileSync(file, newFarmSecretText(), { mode: 0o600 })
  return file
}

/**
 * Start `hosts.length` nodes, node i listening on hosts[i] (distinct loopback addresses), all
 * sharing one certificate and one farm secret. `sync(i, ports)` gives node i's sync flags.
 */
export async function startFarm (hosts: string[], opts: {
  sync: (i: number, syncPorts: number[]) => string[]
  extra?: string[]
  /** How long each node may take to be ready (startNode's default when absent). */
  startTimeoutMs?: number
  dir?: string
  /** Workers per node (1 unless given). */
  workers?: number
  /** Environment of every node. */
  env?: NodeJS.ProcessEnv
}): Promise<{ nodes: FarmNode[]; dir: string; cert: string; secret: string; stop: () => Promise<void> }> {
  const dir = opts.dir ?? tempDir()
  const cert = makeCertificate(dir, 'farm', ['localhost'])
  const secret = writeFarmSecret(dir)
  const ports = await freePorts(hosts.length * 3)
  const nodes: FarmNode[] = []
  const syncPorts = hosts.map((_, i) => ports[i * 3 + 2] as number)
  // allSettled: when one node cannot start, the others are stopped before the error is
  // thrown, so no node is left behind holding the test process open.
  const started = await Promise.allSettled(hosts.map(async (host, i) => {
    const port = ports[i * 3] as number
    const admin = ports[i * 3 + 1] as number
    const args = [
      '--workers', String(opts.workers ?? 1), '--listen', `${host.includes(':') ? `[${host}]` : host}:${port}`, '--cert', cert,
      '--node-id', `node${i + 1}`, '--sync-secret-file', secret, '--warm-join-timeout', '0.5',
      // Each node its own, kept across a restart with the same args (the sync's replay state is there).
      '--state-dir', path.join(dir, `state-node${i + 1}`),
      ...opts.sync(i, syncPorts), ...(opts.extra ?? [])
    ]
    const node = await startNode(args, { adminPort: admin, ...(opts.startTimeoutMs !== undefined ? { timeoutMs: opts.startTimeoutMs } : {}), ...(opts.env !== undefined ? { env: opts.env } : {}) })
    nodes[i] = { node, host, port, sync: syncPorts[i] as number, args, admin }
  }))
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed !== undefined) {
    await Promise.all(nodes.filter((n) => n !== undefined).map(async (n) => await n.node.stop()))
    throw failed.reason
  }
  return {
    nodes,
    dir,
    cert,
    secret,
    stop: async () => { await Promise.all(nodes.map(async (n) => await n.node.stop())) }
  }
}

/** Stop a farm node and start it again with its own flags: how many sessions its warm join brought (its log says). */
export async function restartForWarmJoin (node: FarmNode): Promise<number> {
  await node.node.stop()
  node.node = await startNode(node.args, { adminPort: node.admin })
  const done = node.node.logs.find((l) => l.msg === 'warm join done')
  return Number(done?.sessions ?? -1)
}

/** Retry a resumption for up to `timeoutMs` (the New needs a moment to cross the farm). */
export async function resumesEventually (attempt: () => Promise<SClientResult>, timeoutMs = 3000): Promise<SClientResult> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const result = await attempt()
    if (result.reused || Date.now() > deadline) return result
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export { sClient }
