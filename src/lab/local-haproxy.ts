import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { formatHostPort, type HostPort } from '../config/host-port.js'
import { LabError } from '../errors.js'
import { writeHaproxyKeyFile } from '../haproxy/key-file.js'
import { HaproxyRuntimeApi } from '../haproxy/runtime-api.js'
import { onLines } from '../util/lines.js'
import { killGroup, requireHaproxy, spawnChild, stopChild, waitExit } from './processes.js'

export interface LocalHaproxyOptions {
  /** Where its config, admin socket and key file live. */
  dir: string
  /** The bind the front HAProxy sends clients to (PROXY v2 + TLS). */
  listen: HostPort
  /** Where the plaintext goes (with a PROXY v1 header, as the lab's tlsfleet nodes send it). */
  backend: HostPort
  cert: string
  secretFile: string
  rotationSeconds: number
}

/**
 * A lab node's own HAProxy when HAProxy terminates TLS on it (`tlsfleet lab --terminator
 * haproxy|mixed`): the node-side config of haproxy/haproxy-node.cfg on loopback. Before each
 * start its key file is written as `tlsfleet haproxy-keys` writes it, so it comes up with the
 * farm's ring; its tlsfleet companion keeps the ring current after that.
 */
export class LocalHaproxy {
  process?: ChildProcess
  readonly socketPath: string
  readonly keyFile: string
  private readonly output: string[] = []

  constructor (private readonly opts: LocalHaproxyOptions) {
    this.socketPath = path.join(opts.dir, 'node.sock')
    this.keyFile = path.join(opts.dir, 'tls-ticket-keys')
  }

  get pid (): number | undefined { return this.process?.exitCode === null && this.process.signalCode === null ? this.process.pid : undefined }

  config (): string {
    const o = this.opts
    return [
      'global',
      `    stats socket ${this.socketPath} mode 600 level admin`,
      '    stats timeout 10s',
      '    ssl-default-bind-options ssl-min-ver TLSv1.2',
      '    tune.ssl.cachesize 100000',
      '    tune.ssl.lifetime 300',
      '',
      'defaults',
      '    mode tcp',
      '    timeout connect 1s',
      '    timeout client 30s',
      '    timeout server 30s',
      '',
      'frontend tls_in',
      `    bind ${formatHostPort(o.listen)} accept-proxy ssl crt ${o.cert} tls-ticket-keys ${this.keyFile}`,
      '    default_backend app',
      '',
      'backend app',
      `    server app ${formatHostPort(o.backend)} send-proxy`,
      ''
    ].join('\n')
  }

  async start (timeoutMs = 10_000): Promise<void> {
    fs.mkdirSync(this.opts.dir, { recursive: true })
    writeHaproxyKeyFile({ secretFiles: [this.opts.secretFile], rotationSeconds: this.opts.rotationSeconds, out: this.keyFile })
    const cfg = path.join(this.opts.dir, 'haproxy-node.cfg')
    fs.writeFileSync(cfg, this.config())
    const child = spawnChild(requireHaproxy(), ['-db', '-f', cfg])
    this.process = child
    const keep = (line: string): void => { this.output.push(line); if (this.output.length > 30) this.output.shift() }
    onLines(child.stdout, keep)
    onLines(child.stderr, keep)
    const api = new HaproxyRuntimeApi(this.socketPath, { timeoutMs: 1000 })
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new LabError(`the node's haproxy (${formatHostPort(this.opts.listen)}) exited at start:\n${this.output.join('\n')}`)
      try {
        if ((await api.command('show info')).includes('Name: HAProxy')) return
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new LabError(`the node's haproxy did not answer on ${this.socketPath} within ${timeoutMs} ms:\n${this.output.join('\n')}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  async kill (): Promise<void> {
    if (this.process === undefined) return
    killGroup(this.process, 'SIGKILL')
    await waitExit(this.process, 5000)
  }

  async stop (): Promise<void> {
    if (this.process !== undefined) await stopChild(this.process, 3000)
  }
}
