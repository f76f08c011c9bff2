// Entry point of a worker process, forked by the primary through node:cluster.
import { runWorker } from './worker.js'

runWorker()
