import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { formatHostPort, type HostPort } from '../config/host-port.js'

/** The repository's (or installed package's) haproxy/ folder. */
export const HAPROXY_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../haproxy')

export interface LabServer {
  name: string
  tls: HostPort
  /** Agent-check port on the same address, when the nodes run an agent. */
  agentPort?: number
}

export interface LabHaproxyOptions {
  frontend: HostPort
  servers: LabServer[]
  socketPath: string
  /** Health check interval (ms): short in the lab so a killed node is noticed within ~1 s. */
  checkIntervalMs?: number
}

/**
 * The session-ID persistence lines of the shipped haproxy/haproxy.cfg (stick-table, acl,
 * tcp-request/response, stick), so the lab balances exactly like the documented farm.
 */
export function persistenceLines (cfgText = fs.readFileSync(path.join(HAPROXY_DIR, 'haproxy.cfg'), 'utf8')): string[] {
  const lines = cfgText.split('\n').map((l) => l.replace(/#.*$/, '').trim())
  const start = lines.findIndex((l) => l.startsWith('backend tlsfleet'))
  if (start < 0) throw new Error('haproxy/haproxy.cfg has no "backend tlsfleet" section')
  const out: string[] = []
  for (const line of lines.slice(start + 1)) {
    if (/^(global|defaults|frontend|backend|listen|resolvers)\b/.test(line)) break
    if (/^(stick-table|acl|tcp-request|tcp-response|stick) /.test(line)) out.push(line)
  }
  return out
}

/**
 * The lab's HAProxy config: the farm config of haproxy/ with loopback addresses instead of
 * DNS names, a faster health check, a redispatch on a refused connection (a killed node's
 * port refuses at once) and one log line per connection that names the node, so the lab can
 * tell which node served each of its clients.
 */
export function labHaproxyConfig (opts: LabHaproxyOptions): string {
  const inter = opts.checkIntervalMs ?? 500
  const servers = opts.servers.map((s) => {
    const agent = s.agentPort !== undefined ? ` agent-check agent-port ${s.agentPort} agent-inter ${inter}ms agent-send "hello\\n"` : ''
    return `    server ${s.name} ${formatHostPort(s.tls)}${agent}`
  })
  return [
    'global',
    '    log stdout format raw local0 info',
    `    stats socket ${opts.socketPath} mode 600 level admin`,
    '    stats timeout 10s',
    '',
    'defaults',
    '    mode tcp',
    '    log global',
    // LAB <client port> <server> <termination state>: joined with the client's own results.
    '    log-format "LAB %cp %s %ts"',
    '    timeout connect 1s',
    '    timeout client 30s',
    '    timeout server 30s',
    `    timeout check ${Math.max(inter, 500)}ms`,
    '    retries 2',
    '    option redispatch 1',
    '',
    'frontend tls_in',
    `    bind ${formatHostPort(opts.frontend)}`,
    '    default_backend tlsfleet',
    '',
    'backend tlsfleet',
    '    balance roundrobin',
    ...persistenceLines().map((l) => `    ${l}`),
    `    default-server weight 100 send-proxy-v2 check inter ${inter}ms fall 2 rise 2`,
    ...servers,
    ''
  ].join('\n')
}
