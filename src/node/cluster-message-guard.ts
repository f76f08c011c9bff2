import type { Worker as ClusterWorker } from 'node:cluster'

/**
 * Node's own cluster messages (`{ cmd: 'NODE_CLUSTER', act: 'queryServer', ... }`: a worker
 * asking the primary to bind an address for it) go to node:cluster's handler, beneath the
 * node's message check (worker-message-check.ts), and that handler trusts them: a worker that
 * sent one without an address made it throw, an uncaught exception that stopped the node. Its
 * listener (node:cluster names it `onInternalMessage`, Node 20 to 24) is wrapped here, so a throw
 * is reported instead. Returns false when the listener is not found (another Node): unguarded.
 */
export function guardClusterMessages (worker: ClusterWorker, onThrow: (err: unknown) => void): boolean {
  const proc = worker.process
  const handler = proc.listeners('internalMessage').find((listener) => listener.name === 'onInternalMessage') as ((...args: unknown[]) => void) | undefined
  if (handler === undefined) return false
  proc.removeListener('internalMessage', handler)
  proc.on('internalMessage', function (this: unknown, message: unknown, handle: unknown) {
    try {
      handler.call(this, message, handle)
    } catch (err) {
      onThrow(err)
    }
  })
  return true
}
