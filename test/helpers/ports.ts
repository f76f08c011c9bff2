import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
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

/**
 * Hold the built-in default ports (TLS 8443, admin 8445) for a test that must use them, across
 * test processes (a lock file beside the free-port reservations); waits up to `timeoutMs`.
 * Returns the release function. A lock older than 5 minutes is a crashed holder's: taken over.
 */
export async function holdDefaultPorts (timeoutMs = 120_000): Promise<() => void> {
  const dir = path.join(os.tmpdir(), 'tlsfleet-ports')
  const lock = path.join(dir, 'default-ports.lock')
  fs.mkdirSync(dir, { recursive: true })
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      fs.closeSync(fs.openSync(lock, 'wx'))
      return () => fs.rmSync(lock, { force: true })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      try { if (Date.now() - fs.statSync(lock).mtimeMs > 5 * 60_000) fs.rmSync(lock, { force: true }) } catch { /* released meanwhile */ }
    }
    if (Date.now() > deadline) throw new Error(`the default ports stayed held by another test for ${timeoutMs} ms (${lock})`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}
