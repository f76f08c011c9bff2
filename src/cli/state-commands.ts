import { Command } from 'commander'
import type { PutStateResponse } from '../admin/schemas.js'
import type { AdminState } from '../agent/agent-reply.js'
import { AdminClientError } from '../errors.js'
import { PUT_STATE_ANSWER } from './admin-answers.js'
import { AdminClient, type AdminClientOptions } from './admin-client.js'
import { addAdminOptions } from './status-command.js'

const DESCRIPTIONS: Record<AdminState, string> = {
  ready: 'put a node back into service (HAProxy sends it new clients again)',
  drain: 'stop sending new clients to a node; persistent clients still arrive unless --move-clients',
  maint: 'take a node out: HAProxy sends even its persistent clients elsewhere (its stick-table entries are cleared)'
}

/** `tlsfleet ready|drain|maint`: change a node's admin state through its admin API. */
export function stateCommand (state: AdminState): Command {
  const command = new Command(state).description(DESCRIPTIONS[state])
  addAdminOptions(command)
  // ready needs no move (nothing persists to a node being put back), maint moves them anyway.
  if (state === 'drain') command.option('--move-clients', 'also clear the node\'s HAProxy stick-table entries, so its persistent clients resume on other nodes')
  command.action(async (opts: AdminClientOptions & { moveClients?: boolean }) => {
    const client = new AdminClient(opts)
    const result = await client.put<PutStateResponse>('/v1/state', { state, ...(opts.moveClients === true ? { moveClients: true } : {}) }, PUT_STATE_ANSWER)
    // What the node says it is now: a drain reported done must be one.
    if (result.state !== state) throw new AdminClientError(`PUT ${client.base}/v1/state asked for ${state}, but the node answered that it is ${result.state}`)
    const lines = [result.changed ? `${client.base}: ${result.previous} -> ${result.state}` : `${client.base}: already ${result.state}`]
    for (const c of result.haproxy?.commands ?? []) lines.push(`  haproxy: ${c.command}: ${c.ok ? 'ok' : `FAILED: ${c.error ?? 'unknown error'}`}`)
    process.stdout.write(lines.join('\n') + '\n')
    if (result.haproxy !== undefined && !result.haproxy.ok) {
      // HAProxy's reasons in the error too: stdout may go elsewhere than the error line.
      const reasons = result.haproxy.commands.filter((c) => !c.ok).map((c) => c.error ?? `${c.command}: unknown error`).join('; ')
      throw new AdminClientError(`the node is now ${result.state}, but HAProxy refused: ${reasons}; its agent will still report ${result.state} at the next check`)
    }
  })
  return command
}
