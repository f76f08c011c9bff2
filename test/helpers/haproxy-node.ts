import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { expectedRing } from '../../src/haproxy/tls-keys.js'
import { loadFarmSecrets } from '../../src/sync/farm-secret.js'
import { farmTicketSecrets } from '../../src/tls/farm-ticket-secret.js'
import { TicketKeySchedule } from '../../src/tls/ticket-keys.js'
import { agentSays, runCli } from './agent.js'
import { pollUntil, startHaproxy, TCP_DEFAULTS, type RunningHaproxy } from './haproxy.js'
import { startNode, type RunningNode } from './node-process.js'
import { freePorts } from './ports.js'

/**
 * One HAProxy-terminated node as an operator runs it: `tlsfleet haproxy-keys` writes the key
 * file, a real local HAProxy terminates TLS with it (`tls-ticket-keys`), and `tlsfleet node
 * --terminator haproxy` companions it (agent, admin API, key ring). The local HAProxy has two
 * binds on the same key file: `proxyPort` with accept-proxy (for a front HAProxy) and `port`
 * for clients connecting directly.
 */
export interface HaproxyNode {
  name: string
  haproxy: RunningHaproxy
  node: RunningNode
  port: number
  proxyPort: number
  agentPort: number
  keyFile: string
  /** The local HAProxy's directory: config, admin socket, key file (kept across restarts). */
  dir: string
  config: string
  /** A new local HAProxy process from the same config and the key file as it is on disk. */
  startHaproxy: () => Promise<RunningHaproxy>
  /** Reload the local HAProxy as `haproxy -sf OLDPID` does: a new process from the key file on disk, the old one finishing. */
  reloadHaproxy: () => Promise<RunningHaproxy>
  agent: () => Promise<string>
  stop: () => Promise<void>
}

export interface HaproxyNodeOptions {
  dir: string
  name: string
  cert: string
  secret: string
  rotationSeconds: number
  backendPort: number
  /** Extra `global` lines for the local HAProxy (e.g. another stats socket). */
  globalLines?: string[]
  /** Extra node flags (sync, front HAProxy coordination...). */
  nodeArgs?: string[]
}

export async function startHaproxyNode (opts: HaproxyNodeOptions): Promise<HaproxyNode> {
  const dir = path.join(opts.dir, opts.name)
  fs.mkdirSync(dir, { recursive: true })
  const keyFile = path.join(dir, 'tls-ticket-keys')
  const keys = await runCli(['haproxy-keys', '--sync-secret-file', opts.secret, '--ticket-rotation', String(opts.rotationSeconds), '--out', keyFile])
  assert.equal(keys.code, 0, keys.stderr)
  const [port, proxyPort, agentPort, adminPort] = await freePorts(4) as [number, number, number, number]
  const config = `${(opts.globalLines ?? []).length > 0 ? `global\n${(opts.globalLines ?? []).map((l) => `  ${l}`).join('\n')}\n` : ''}${TCP_DEFAULTS}
frontend tls_in
  bind 127.0.0.1:${proxyPort} accept-proxy ssl crt ${opts.cert} tls-ticket-keys ${keyFile}
  bind 127.0.0.1:${port} ssl crt ${opts.cert} tls-ticket-keys ${keyFile}
  default_backend app

backend app
  server app 127.0.0.1:${opts.backendPort}
`
  const launch = async (replacing?: number): Promise<RunningHaproxy> => await startHaproxy(config, { dir, ports: 0, ...(replacing !== undefined ? { replacing } : {}) })
  const haproxy = await launch()
  let node: RunningNode
  try {
    node = await startNode([
      '--terminator', 'haproxy', '--terminator-socket', haproxy.socketPath, '--terminator-keys', keyFile,
      '--sync-secret-file', opts.secret, '--ticket-rotation', String(opts.rotationSeconds),
      '--agent-listen', `127.0.0.1:${agentPort}`, '--node-id', opts.name, ...(opts.nodeArgs ?? [])
    ], { adminPort })
  } catch (err) {
    await haproxy.stop()
    throw err
  }
  const member: HaproxyNode = {
    name: opts.name,
    haproxy,
    node,
    port,
    proxyPort,
    agentPort,
    keyFile,
    dir,
    config,
    startHaproxy: async () => { member.haproxy = await launch(); return member.haproxy },
    reloadHaproxy: async () => {
      const old = member.haproxy
      member.haproxy = await launch(old.pid)
      // The old process exits once its connections are done; make sure it is gone.
      await old.stop()
      return member.haproxy
    },
    agent: async () => await agentSays(agentPort),
    stop: async () => {
      await member.node.stop()
      await member.haproxy.stop()
    }
  }
  return member
}

/** The farm's ticket key ring (HAProxy key lines, oldest first) at `atMs`, from the farm secret file. */
export function farmRing (secretFile: string, rotationSeconds: number, atMs = Date.now()): { epoch: number; lines: string[] } {
  const [secret] = farmTicketSecrets(loadFarmSecrets([secretFile]))
  const schedule = new TicketKeySchedule({ secret: secret as Buffer, rotationSeconds, lifetimeSeconds: 0, now: () => atMs })
  return expectedRing(schedule, atMs)
}

/** Wait until the agent's line matches `pattern` (bounded). */
export async function agentUntil (member: HaproxyNode, pattern: RegExp, timeoutMs = 8000): Promise<string> {
  return await pollUntil(`${member.name}'s agent to say ${String(pattern)}`, async () => {
    const line = await member.agent()
    return pattern.test(line) ? line : undefined
  }, timeoutMs)
}
