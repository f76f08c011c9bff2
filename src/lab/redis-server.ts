import { spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { LabError } from '../errors.js'
import { freeTcpPort } from '../util/free-port.js'
import { onLines } from '../util/lines.js'
import { killGroup, spawnChild, stopChild, waitExit, which } from './processes.js'

/** A real redis-server for the tests and the bench: loopback only, nothing written to disk. */
/** A TLS-only server: its certificate and key, the CA it verifies clients with, and whether it asks them for a certificate. */
export interface RedisTls {
  certFile: string
  keyFile: string
  caFile: string
  authClients: boolean
}

export class RedisServer {
  private child?: ChildProcess

  /** Its working directory: a replica writes the master's snapshot there, and any server loads a dump.rdb it finds there at start. */
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-redis-'))

  private constructor (private readonly bin: string, readonly host: string, readonly port: number, private readonly extraArgs: string[], private readonly tls?: RedisTls) {}

  /**
   * redis-server (Debian's package) on a free loopback port, ready to answer. `args` are more
   * of its options (a replica's `--replicaof`, a Cluster node's `--cluster-enabled yes`).
   */
  static async start (host = '127.0.0.1', opts: { args?: string[]; tls?: RedisTls } = {}): Promise<RedisServer> {
    const bin = which('redis-server')
    if (bin === undefined) throw new LabError('redis-server is not installed (the session store tests and bench run a real one): apt-get install redis-server')
    const server = new RedisServer(bin, host, await freeTcpPort(host), opts.args ?? [], opts.tls)
    await server.start()
    return server
  }

  /** With `tls`, a rediss:// URL: the port speaks TLS only. */
  get url (): string { return `${this.tls !== undefined ? 'rediss' : 'redis'}://${this.host}:${this.port}/0` }
  get pid (): number | undefined { return this.child?.pid }

  /** (Re)start on the same port. */
  async start (timeoutMs = 10_000): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true })
    const tls = this.tls
    const ports = tls === undefined
      ? ['--port', String(this.port)]
      : ['--port', '0', '--tls-port', String(this.port), '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile, '--tls-ca-cert-file', tls.caFile, '--tls-auth-clients', tls.authClients ? 'yes' : 'no']
    const child = spawnChild(this.bin, [...ports, '--bind', this.host, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'notice', '--dir', this.dir, ...this.extraArgs])
    this.child = child
    let output = ''
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs)
      const done = (ok: boolean): void => { clearTimeout(timer); resolve(ok) }
      onLines(child.stdout, (line) => { output += line + '\n'; if (line.includes('Ready to accept connections')) done(true) })
      child.once('exit', () => done(false))
    })
    if (!ready) {
      killGroup(child, 'SIGKILL')
      throw new LabError(`redis-server did not start on ${this.host}:${this.port}:\n${output}`)
    }
  }

  /** Die at once, as a crashed server does. */
  async kill (): Promise<void> {
    if (this.child === undefined) return
    killGroup(this.child, 'SIGKILL')
    await waitExit(this.child, 5000)
  }

  async stop (): Promise<void> {
    if (this.child !== undefined) await stopChild(this.child, 3000)
    fs.rmSync(this.dir, { recursive: true, force: true })
  }

  /** One redis-cli command; `input` becomes the last argument (-x), so values may be binary. Returns raw stdout. */
  cli (args: string[], input?: Buffer): Buffer {
    const result = spawnSync('redis-cli', ['-h', this.host, '-p', String(this.port), '--raw', ...(input !== undefined ? ['-x'] : []), ...args], { input, timeout: 5000 })
    if (result.status !== 0) throw new LabError(`redis-cli ${args.join(' ')}: ${result.stderr.toString()}`)
    return result.stdout
  }
}
