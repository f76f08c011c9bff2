import { spawnSync } from 'node:child_process'
import os from 'node:os'

export interface MachineInfo {
  cpu: string
  cores: number
  kernel: string
  node: string
  openssl: string
  haproxy?: string
  hitch?: string
  serverCpus: string
  clientCpus: string
}

function firstLine (cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.error !== undefined) return undefined // not installed
  if (r.status !== 0 && r.stdout === '' && r.stderr === '') return undefined
  return `${r.stdout}${r.stderr}`.split('\n')[0]?.trim()
}

export function machineInfo (serverCpus: string, clientCpus: string): MachineInfo {
  const info: MachineInfo = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    openssl: firstLine('openssl', ['version']) ?? `bundled ${process.versions.openssl}`,
    serverCpus,
    clientCpus
  }
  const haproxy = firstLine('haproxy', ['-v'])
  if (haproxy !== undefined) info.haproxy = haproxy
  const hitch = firstLine('hitch', ['--version'])
  if (hitch !== undefined) info.hitch = hitch
  return info
}

/** Default split: the last CPU for the server, the others for the clients (one CPU: shared). */
export function defaultCpuSets (): { server: string; client: string } {
  const n = os.availableParallelism()
  if (n <= 1) return { server: '0', client: '0' }
  return { server: String(n - 1), client: n === 2 ? '0' : `0-${n - 2}` }
}
