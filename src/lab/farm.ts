import crypto from 'node:crypto'
import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { GENERATED_TOKEN_FILE, readTokenFile } from '../admin/admin-auth.js'
import { formatHostPort, type HostPort } from '../config/host-port.js'
import { HaproxyRuntimeApi } from '../haproxy/runtime-api.js'
import type { StatRow } from '../haproxy/stats.js'
import { ensureSelfSignedCertificate } from '../tls/self-signed.js'
import { labHaproxyConfig } from './haproxy-config.js'
import { freeTcpPort, freeTcpUdpPort } from '../util/free-port.js'
import { LabError } from '../errors.js'
import { writeFarmSecretFile } from '../sync/farm-secret.js'
import { onLines } from '../util/lines.js'
import { waitForLine } from './child-waits.js'
import { killGroup, removeIfLabDies, requireHaproxy, spawnChild, stopChild, TLSFLEET_CLI, waitExit } from './processes.js'
import { treeCpuSeconds } from './proc-cpu.js'
import { LocalHaproxy } from './local-haproxy.js'

export type SyncMode = 'unicast' | 'multicast' | 'off'
/** Who terminates TLS on the nodes: tlsfleet, a local HAProxy on each, or both (node1 and node3 HAProxy). */
export type TerminatorMode = 'tlsfleet' | 'haproxy' | 'mixed'
export const TERMINATOR_MODES: readonly TerminatorMode[] = ['tlsfleet', 'haproxy', 'mixed']

export interface FarmOptions {
  /** HAProxy's client-facing address. */
  frontend: HostPort
  nodes?: number
  workersPerNode?: number
  /** unicast peers (default), one multicast group, or off: each node alone (no shared sessions). */
  sync?: SyncMode
  /** PEM with key and certificate for every node (default: a self-signed RSA-2048 one). */
  cert?: string
  /** The nodes answer HAProxy's agent-check (default on). */
  agent?: 'on' | 'off'
  /** Pin the nodes (and their workers) to these CPUs (`taskset -c`). */
  nodeCpus?: string
  /** Who terminates TLS on the nodes (default tlsfleet). */
  terminator?: TerminatorMode
  /** Extra flags for every node. */
  nodeArgs?: string[]
  /** Progress messages for people. */
  log?: (message: string) => void
  /** Every HAProxy output line (the per-connection LAB lines included). */
  onHaproxyLine?: (line: string) => void
}

/** One node of the lab: a real `tlsfleet node` process tree. */
export class LabNode {
  process?: ChildProcess
  state: 'stopped' | 'starting' | 'up' | 'killed' = 'stopped'
  private readonly recent: string[] = []

  constructor (
    readonly name: string,
    readonly address: string,
    readonly ports: { tls: number; admin: number; sync: number; agent?: number },
    private readonly args: string[],
    private readonly cpus: string | undefined,
    /** The node's own HAProxy, when HAProxy terminates TLS on it (its tlsfleet is the companion). */
    readonly local?: LocalHaproxy
  ) {}

  get adminUrl (): string { return `http://${this.address}:${this.ports.admin}` }
  get tls (): HostPort { return { host: this.address, port: this.ports.tls } }
  get pid (): number | undefined { return this.state === 'up' || this.state === 'starting' ? this.process?.pid : undefined }
  get terminator (): 'tlsfleet' | 'haproxy' { return this.local === undefined ? 'tlsfleet' : 'haproxy' }

  /** Roots of the node's process trees for CPU accounting: its tlsfleet, and its own HAProxy. */
  cpuRoots (): number[] {
    if (this.pid === undefined) return []
    return [this.pid, this.local?.pid].filter((pid): pid is number => pid !== undefined)
  }

  async start (timeoutMs = 30_000): Promise<void> {
    this.state = 'starting'
    await this.local?.start()
    const child = spawnChild(process.execPath, [TLSFLEET_CLI, 'node', ...this.args], this.cpus !== undefined ? { cpus: this.cpus } : {})
    this.process = child
    let ready = false
    const remember = (line: string): void => { this.recent.push(line); if (this.recent.length > 40) this.recent.shift() }
    onLines(child.stdout, (line) => {
      remember(line)
      if (!ready && line.includes('"tlsfleet node ready"')) ready = true
    })
    onLines(child.stderr, remember)
    const deadline = Date.now() + timeoutMs
    while (!ready) {
      if (child.exitCode !== null || child.signalCode !== null) {
        this.state = 'stopped'
        throw new LabError(`${this.name} exited during start (code ${String(child.exitCode)}):\n${this.recent.join('\n')}`)
      }
      if (Date.now() > deadline) {
        killGroup(child, 'SIGKILL')
        this.state = 'stopped'
        throw new LabError(`${this.name} was not ready within ${timeoutMs} ms:\n${this.recent.join('\n')}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    this.state = 'up'
  }

  /** The node dies: SIGKILL to the primary and its workers at once, as when a machine fails. */
  async kill (): Promise<void> {
    if (this.process === undefined) return
    this.state = 'killed'
    killGroup(this.process, 'SIGKILL')
    await Promise.all([waitExit(this.process, 5000), this.local?.kill()])
  }

  /** Graceful stop (SIGTERM: listeners close, open connections finish). */
  async stop (): Promise<void> {
    if (this.process === undefined) return
    this.state = 'stopped'
    await stopChild(this.process, 8000)
    await this.local?.stop()
  }

  /** CPU seconds of the primary and its workers so far (0 when not running). */
  cpuSeconds (): number {
    return treeCpuSeconds(this.cpuRoots())
  }

  async metricsText (timeoutMs = 1500): Promise<string> {
    const res = await fetch(`${this.adminUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) })
    return await res.text()
  }

  logTail (): string { return this.recent.join('\n') }
}

/**
 * The lab farm on loopback: a real HAProxy (TCP mode, PROXY v2, health check, agent-check when
 * the nodes have one, session-ID stickiness), three `tlsfleet node` processes on 127.0.0.11-13
 * sharing sessions over the farm sync, and two demo backends on 127.0.0.21-22. Every address is
 * a loopback one; Linux routes all of 127/8 to lo.
 */
export class LabFarm {
  readonly nodes: LabNode[] = []
  readonly dir: string
  readonly backends: HostPort[] = []
  readonly agent: boolean
  haproxy?: ChildProcess
  api?: HaproxyRuntimeApi
  private readonly backendProcesses: ChildProcess[] = []
  private readonly haproxyOutput: string[] = []
  private readonly log: (message: string) => void
  private stopped = false

  constructor (readonly opts: FarmOptions) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-lab-'))
    removeIfLabDies(this.dir)
    this.log = opts.log ?? (() => {})
    this.agent = opts.agent !== 'off'
  }

  get socketPath (): string { return path.join(this.dir, 'haproxy.sock') }

  async start (): Promise<void> {
    const haproxyBin = requireHaproxy()
    try {
      await this.startBackends()
      await this.startNodes()
      await this.startHaproxy(haproxyBin)
      await this.waitServersUp()
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  private async startBackends (): Promise<void> {
    for (const [i, name] of ['web1', 'web2'].entries()) {
      const host = `127.0.0.${21 + i}`
      const port = await freeTcpPort(host)
      const child = spawnChild(process.execPath, [TLSFLEET_CLI, 'demo-backend', '--listen', `${host}:${port}`, '--name', name])
      // Bounded, ends at the backend's exit, stops it on failure (child-waits.ts).
      await waitForLine(child, (line) => line.includes('listening'), { what: `demo backend ${name} (${host}:${port})`, waitingFor: 'listening', timeoutMs: 15_000 })
      this.backendProcesses.push(child)
      this.backends.push({ host, port })
      this.log(`backend ${name} on ${host}:${port}`)
    }
  }

  private async startNodes (): Promise<void> {
    const count = this.opts.nodes ?? 3
    const sync = this.opts.sync ?? 'unicast'
    const cert = this.opts.cert ?? (await ensureSelfSignedCertificate(path.join(this.dir, 'cert'))).file
    const secretFile = writeFarmSecretFile(path.join(this.dir, 'farm.key'))
    const multicast = sync === 'multicast' ? { host: `239.255.${crypto.randomInt(0, 255)}.${crypto.randomInt(1, 255)}`, port: await freeTcpUdpPort('0.0.0.0') } : undefined
    const plans: Array<{ name: string; address: string; ports: { tls: number; admin: number; sync: number; agent?: number } }> = []
    for (let i = 1; i <= count; i++) {
      const address = `127.0.0.${10 + i}`
      const taken = new Set<number>() // one node's listeners must get distinct ports
      const ports: { tls: number; admin: number; sync: number; agent?: number } = {
        tls: await freeTcpPort(address, taken),
        admin: await freeTcpPort(address, taken),
        sync: multicast?.port ?? await freeTcpUdpPort(address, taken)
      }
      if (this.agent) ports.agent = await freeTcpPort(address, taken)
      plans.push({ name: `node${i}`, address, ports })
    }
    const mode = this.opts.terminator ?? 'tlsfleet'
    for (const [i, plan] of plans.entries()) {
      const backend = this.backends[i % this.backends.length] as HostPort
      // mixed: node1 and node3 HAProxy-terminated, node2 tlsfleet (each act of the scene then
      // moves clients between the two kinds).
      const haproxyTerminated = mode === 'haproxy' || (mode === 'mixed' && i % 2 === 0)
      // Without sync each node is alone: an HAProxy node then gets its own secret (its own keys).
      const nodeSecret = haproxyTerminated && sync === 'off' ? writeFarmSecretFile(path.join(this.dir, `${plan.name}.key`)) : secretFile
      const local = haproxyTerminated
        ? new LocalHaproxy({ dir: path.join(this.dir, plan.name, 'haproxy'), listen: { host: plan.address, port: plan.ports.tls }, backend, cert, secretFile: nodeSecret, rotationSeconds: 3600 })
        : undefined
      const serving = local !== undefined
        ? ['--terminator', 'haproxy', '--terminator-socket', local.socketPath, '--terminator-keys', local.keyFile]
        : [
            '--listen', `${plan.address}:${plan.ports.tls}`,
            '--proxy-protocol-in', 'v2', '--proxy-protocol-out', 'v1',
            '--backend', formatHostPort(backend),
            '--workers', String(this.opts.workersPerNode ?? 1),
            '--cert', cert,
            // HAProxy's own session-ID context: tickets then cross between the two kinds.
            ...(mode === 'mixed' ? ['--session-id-context', 'haproxy'] : [])
          ]
      const args = [
        ...serving,
        '--node-id', plan.name,
        '--admin-listen', `${plan.address}:${plan.ports.admin}`,
        '--state-dir', path.join(this.dir, plan.name),
        '--grace-period', '3',
        '--log-format', 'json'
      ]
      if (plan.ports.agent !== undefined) args.push('--agent-listen', `${plan.address}:${plan.ports.agent}`)
      if (sync === 'unicast') {
        args.push('--sync-listen', `${plan.address}:${plan.ports.sync}`, '--sync-secret-file', secretFile, '--warm-join-timeout', '1')
        for (const peer of plans) if (peer !== plan) args.push('--sync-peer', `${peer.address}:${peer.ports.sync}`)
      } else if (sync === 'multicast' && multicast !== undefined) {
        args.push('--sync-listen', formatHostPort(multicast), '--sync-interface', '127.0.0.1', '--sync-secret-file', secretFile, '--warm-join-timeout', '1')
      }
      // An HAProxy node's ticket keys derive from a farm secret even when it syncs nothing.
      if (local !== undefined && sync === 'off') args.push('--sync-secret-file', nodeSecret)
      args.push(...(this.opts.nodeArgs ?? []))
      this.nodes.push(new LabNode(plan.name, plan.address, plan.ports, args, this.opts.nodeCpus, local))
    }
    await Promise.all(this.nodes.map(async (node) => { await node.start() }))
    for (const node of this.nodes) {
      this.log(`${node.name} on ${formatHostPort(node.tls)} (${node.local !== undefined ? 'TLS by its own haproxy, tlsfleet companion; ' : ''}admin ${node.adminUrl}${node.ports.agent !== undefined ? `, agent :${node.ports.agent}` : ''}, sync ${sync})`)
    }
  }

  private async startHaproxy (bin: string): Promise<void> {
    const cfg = labHaproxyConfig({
      frontend: this.opts.frontend,
      socketPath: this.socketPath,
      servers: this.nodes.map((n) => ({ name: n.name, tls: n.tls, ...(n.ports.agent !== undefined ? { agentPort: n.ports.agent } : {}) }))
    })
    const cfgPath = path.join(this.dir, 'haproxy.cfg')
    fs.writeFileSync(cfgPath, cfg)
    const child = spawnChild(bin, ['-db', '-f', cfgPath])
    this.haproxy = child
    const collect = (line: string): void => {
      if (!line.startsWith('LAB ')) { this.haproxyOutput.push(line); if (this.haproxyOutput.length > 50) this.haproxyOutput.shift() }
      this.opts.onHaproxyLine?.(line)
    }
    onLines(child.stdout, collect)
    onLines(child.stderr, collect)
    this.api = new HaproxyRuntimeApi(this.socketPath, { timeoutMs: 2000 })
    const deadline = Date.now() + 10_000
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        const output = this.haproxyOutput.join('\n')
        const busy = /cannot bind|Address already in use/i.test(output) ? `\n(is ${formatHostPort(this.opts.frontend)} already in use? choose another with --listen)` : ''
        throw new LabError(`haproxy exited at start:\n${output}${busy}`)
      }
      try {
        if ((await this.api.command('show info')).includes('Name: HAProxy')) break
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new LabError(`haproxy did not answer on its stats socket within 10 s:\n${this.haproxyOutput.join('\n')}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    this.log(`haproxy on ${formatHostPort(this.opts.frontend)} (config ${cfgPath}${this.agent ? ', agent-check on' : ', agent-check off'})`)
  }

  /** HAProxy's view of the nodes (`show stat`). */
  async serverStats (): Promise<StatRow[]> {
    if (this.api === undefined) return []
    const rows = await this.api.showStat()
    return rows.filter((r) => r.pxname === 'tlsfleet' && r.svname !== 'BACKEND' && r.svname !== 'FRONTEND')
  }

  /** Wait until HAProxy reports `names` (default: every running node) UP. */
  async waitServersUp (names = this.nodes.filter((n) => n.state === 'up').map((n) => n.name), timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      let rows: StatRow[] = []
      try { rows = await this.serverStats() } catch { /* retry */ }
      const up = new Set(rows.filter((r) => r.status.startsWith('UP')).map((r) => r.svname))
      if (names.every((n) => up.has(n))) return
      if (Date.now() > deadline) {
        throw new LabError(`HAProxy did not see ${names.filter((n) => !up.has(n)).join(', ')} UP within ${timeoutMs} ms: ${rows.map((r) => `${r.svname}=${r.status}`).join(' ')}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  node (name: string): LabNode {
    const found = this.nodes.find((n) => n.name === name)
    if (found === undefined) throw new LabError(`no node named ${name}`)
    return found
  }

  /**
   * Drain a node: HAProxy sends it no new clients (stick-table matches still reach it).
   * Through the node's own admin API when it has an agent (the agent would otherwise undo a
   * drain set on HAProxy's side at its next check), else through HAProxy's Runtime API.
   */
  async drain (name: string): Promise<string> {
    const node = this.node(name)
    if (this.agent) {
      // State changes need the token the node generated in its state dir.
      const token = readTokenFile(path.join(this.dir, name, GENERATED_TOKEN_FILE))
      const res = await fetch(`${node.adminUrl}/v1/state`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ state: 'drain' }),
        signal: AbortSignal.timeout(3000)
      })
      if (res.ok) return 'admin API PUT /v1/state drain (the agent tells HAProxy)'
      this.log(`${name}: PUT /v1/state answered ${res.status}; draining through HAProxy's Runtime API instead`)
    }
    await this.api?.setServerState('tlsfleet', name, 'drain')
    return 'HAProxy Runtime API: set server tlsfleet/' + name + ' state drain'
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.haproxy !== undefined) await stopChild(this.haproxy, 3000)
    await Promise.all(this.nodes.map(async (n) => { await n.stop() }))
    await Promise.all(this.backendProcesses.map(async (b) => { await stopChild(b, 3000) }))
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}
