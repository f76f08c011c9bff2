import cluster from 'node:cluster'
import type net from 'node:net'
import { pathToFileURL } from 'node:url'

/**
 * Preloaded into a node under test (NODE_OPTIONS=--import, which its workers inherit) with
 * TLSFLEET_TEST_IPC_INJECT=<file.mjs>: a cluster worker that gets SIGUSR2 imports that module
 * (afresh each time) and calls its default export with a `send` that writes to the primary
 * over the worker's own IPC channel, as a compromised or buggy worker would: crafted messages
 * of any shape, floods, descriptors attached. The module's `send(message, handle?)` resolves
 * once Node has written the message.
 */
const file = process.env.TLSFLEET_TEST_IPC_INJECT
if (file !== undefined && cluster.isWorker) {
  let round = 0
  const send = async (message: unknown, handle?: net.Server | net.Socket): Promise<void> => {
    await new Promise<void>((resolve) => {
      if (process.send === undefined || !process.connected) { resolve(); return }
      process.send(message, handle, {}, () => resolve())
    })
  }
  process.on('SIGUSR2', () => {
    const url = `${pathToFileURL(file).href}?round=${++round}`
    import(url).then(async (mod: { default: (s: typeof send) => Promise<void> | void }) => { await mod.default(send) }).catch((err: unknown) => {
      process.stderr.write(`ipc-inject: ${String(err)}\n`)
    })
  })
}
