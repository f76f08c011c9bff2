import type { Worker as ClusterWorker } from 'node:cluster'
import type net from 'node:net'
import type { PrimaryToWorker } from './messages.js'

/**
 * Send to a worker that may be dying. Between a killed worker's channel closing and its exit
 * event (which replaces it), a send without a callback makes Node emit the error on the worker,
 * where nothing listens: an uncaught exception that took the primary down. Here a closed
 * channel skips the send (false), and a failed write goes to the callback; the exit event follows.
 */
export function sendToWorker (worker: ClusterWorker, message: PrimaryToWorker, handle?: net.Server): boolean {
  if (!worker.isConnected()) return false
  if (handle !== undefined) worker.send(message, handle, {}, ignoreSendError)
  else worker.send(message, ignoreSendError)
  return true
}

function ignoreSendError (): void { /* the worker is gone; its exit event replaces it */ }
