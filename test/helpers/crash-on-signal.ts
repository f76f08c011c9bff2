import cluster from 'node:cluster'

/**
 * Preloaded into a node under test (NODE_OPTIONS=--import): a cluster worker that gets
 * SIGUSR2 throws an uncaught exception from its event loop, as a bug in a callback would.
 */
if (cluster.isWorker) {
  process.on('SIGUSR2', () => {
    setImmediate(() => { throw new Error('crash asked for by the test (SIGUSR2)') })
  })
}
