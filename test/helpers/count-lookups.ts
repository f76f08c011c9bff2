import dns from 'node:dns'
import fs from 'node:fs'

/**
 * Preloaded into a node under test (NODE_OPTIONS=--import): every system name lookup its
 * processes make (dns.lookup, which net.connect calls for a host name, and its promise form)
 * appends "pid hostname" to the file named by TEST_LOOKUP_LOG.
 */
const file = process.env.TEST_LOOKUP_LOG
if (file !== undefined) {
  const note = (hostname: string): void => { fs.appendFileSync(file, `${process.pid} ${hostname}\n`) }
  const lookup = dns.lookup
  dns.lookup = ((hostname: string, ...rest: unknown[]) => {
    note(hostname)
    return (lookup as (...args: unknown[]) => unknown)(hostname, ...rest)
  }) as typeof dns.lookup
  const promised = dns.promises.lookup
  dns.promises.lookup = (async (hostname: string, options?: unknown) => {
    note(hostname)
    return await (promised as (h: string, o?: unknown) => Promise<unknown>)(hostname, options)
  }) as typeof dns.promises.lookup
}
