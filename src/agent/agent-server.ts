import net from 'node:net'
import { EvictOldest } from '../admission/evict-oldest.js'
import type { HostPort } from '../config/host-port.js'
import { formatAgentReply, type AdminState, type AgentReply } from './agent-reply.js'

/** The line sent when no reply could be built: health only, so nothing the operator set is undone. */
export const AGENT_ERROR_LINE = 'down #agent error\n'

/** Why a connection to the agent port was cut or counted as bad input. */
export type AgentInputProblem = 'oversized' | 'timeout' | 'evicted' | 'binary'

export interface AgentServerOptions {
  listen: HostPort
  /** The reply for this instant; must be synchronous and cheap (it reads cached state). */
  reply: () => AgentReply
  /** How long a connection may stay open after our reply before it is cut (default 2000 ms). */
  lingerMs?: number
  /** Open connections kept at most; a new one evicts the oldest (default 64). */
  maxConnections?: number
  /** Bytes read from a peer before it is cut (default 1024; HAProxy's agent-send is short). */
  maxInputBytes?: number
  /** The state the line told HAProxy: the admin state, or `down` (health down, or no reply could be built). */
  onAnswered?: (state: AdminState | 'down') => void
  onProblem?: (problem: AgentInputProblem) => void
  onError?: (err: Error) => void
}

export interface AgentServer {
  address: HostPort
  /** Connections open now (for tests and metrics). */
  connections: () => number
  close: () => Promise<void>
}

/**
 * HAProxy's agent-check responder. The reply goes out as soon as the connection is accepted,
 * as one complete line, and our side is closed at once: HAProxy reads a single line and needs
 * nothing else. Whatever the peer sends (HAProxy's `agent-send`, or garbage) is read and
 * dropped, only so that closing does not turn into a reset that could lose our line.
 *
 * Bounds, so no peer can make the agent stop answering HAProxy: input is capped, a peer that
 * does not close is cut after `lingerMs`, and when `maxConnections` are open the oldest is
 * evicted instead of refusing the new one (the new one is the likelier to be HAProxy).
 */
export async function startAgentServer (opts: AgentServerOptions): Promise<AgentServer> {
  const lingerMs = opts.lingerMs ?? 2000
  const maxConnections = opts.maxConnections ?? 64
  const maxInput = opts.maxInputBytes ?? 1024
  const open = new EvictOldest(maxConnections, () => opts.onProblem?.('evicted'))

  const server = net.createServer({ allowHalfOpen: false, noDelay: true, pauseOnConnect: false }, (socket) => {
    open.add(socket)
    socket.on('error', () => { /* peers may reset; nothing to do */ })

    let received = 0
    let flagged = false
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length
      // eslint-disable-next-line no-control-regex
      if (!flagged && /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u00ff]/.test(chunk.toString('latin1'))) {
        flagged = true
        opts.onProblem?.('binary')
      }
      if (received > maxInput) {
        opts.onProblem?.('oversized')
        socket.destroy()
      }
    })
    socket.setTimeout(lingerMs, () => {
      opts.onProblem?.('timeout')
      socket.destroy()
    })

    let line: string
    let state: AdminState | 'down'
    try {
      const reply: AgentReply = opts.reply()
      line = formatAgentReply(reply)
      state = reply.health === 'down' ? 'down' : reply.admin
    } catch (err) {
      // Never leave HAProxy with an incomplete line: say down, with the reason. No admin-state
      // word: an agent `ready` would cancel a drain or maint the operator set, and no weight.
      opts.onError?.(err as Error)
      line = AGENT_ERROR_LINE
      state = 'down'
    }
    socket.end(line)
    opts.onAnswered?.(state)
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: opts.listen.host, port: opts.listen.port, backlog: 128 }, () => {
      server.removeListener('error', reject)
      resolve()
    })
  })
  server.on('error', (err) => opts.onError?.(err))
  const address = server.address() as net.AddressInfo
  return {
    address: { host: opts.listen.host, port: address.port },
    connections: () => open.size,
    close: async () => {
      open.destroyAll()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
