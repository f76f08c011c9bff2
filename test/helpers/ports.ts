import { freeTcpPort } from '../../src/util/free-port.js'

/** Ask the kernel for a free TCP port on `host` (bind to 0, read it back, release it). */
export async function freePort (host = '127.0.0.1'): Promise<number> {
  return await freeTcpPort(host)
}

/** Several distinct free ports at once. */
export async function freePorts (count: number, host = '127.0.0.1'): Promise<number[]> {
  const taken = new Set<number>()
  for (let i = 0; i < count; i++) await freeTcpPort(host, taken)
  return [...taken]
}
