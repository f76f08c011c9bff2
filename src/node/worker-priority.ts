import os from 'node:os'
import type { Logger } from '../util/logger.js'

/**
 * Runs a worker `steps` nice levels below the primary (--worker-nice, off by default: on a
 * machine shared with other work the workers would yield to all of it). The primary answers
 * HAProxy's agent-check and /health, serves L2 to the workers and absorbs the farm sync; when
 * the workers saturate the cores, the scheduler then hands it the CPU as soon as it wakes
 * instead of after a worker's slice. The bench's agent suite measured the agent's p99 under
 * saturating handshakes going from 11-12 ms to 6-7 ms at 10 steps (docs/benchmarks.md).
 * Raising a child's nice value needs no privilege; what fails is logged and the worker runs on.
 */
export function lowerWorkerPriority (pid: number | undefined, steps: number, log: Logger): void {
  if (steps === 0 || pid === undefined) return
  const target = Math.min(19, os.getPriority() + steps)
  try {
    os.setPriority(pid, target)
  } catch (err) {
    log.warn({ err, pid, nice: target }, 'could not lower a worker\'s priority (--worker-nice): it runs at the primary\'s')
  }
}
