import { ConfigError } from '../errors.js'
import { parseKeyAndChain, pemBlocks, type KeyAndChainProblem } from '../tls/key-and-chain.js'
import { readCaCertificates, readPemFile, warnLooseKeyFile } from '../tls/pem-files.js'
import type { Logger } from '../util/logger.js'

/** What the store's TLS client presents and trusts, beyond Node's defaults (rediss:// only). */
export interface StoreTls {
  /** PEM CA certificates the server's certificate must chain to (replaces Node's public list). */
  ca?: string
  /** PEM client certificate (with its chain) and its key, for a server that asks for one. */
  cert?: string
  key?: string
}

/** How --session-store-ca and --session-store-cert were given (config/load.ts optionOrigin); the flags when absent. */
export interface StoreTlsOrigins { ca?: string; cert?: string }

/**
 * Read --session-store-ca and --session-store-cert at start: a refusal names the option as
 * given, the file and what is wrong, before the node serves (a client certificate the store
 * refuses would otherwise read only as "session store not reachable").
 */
export function loadStoreTls (caFile: string, certFile: string, log?: Logger, origins: StoreTlsOrigins = {}): StoreTls {
  const tls: StoreTls = {}
  const certOrigin = origins.cert ?? '--session-store-cert'
  if (caFile !== '') tls.ca = readCaCertificates(origins.ca ?? '--session-store-ca', caFile)
  if (certFile !== '') {
    const { keys, certs } = pemBlocks(readPemFile(certOrigin, certFile))
    if (keys.length !== 1 || certs.length === 0) {
      throw new ConfigError([`${certOrigin} "${certFile}": expected one private key and the client certificate (then its chain), found ${keys.length} key(s) and ${certs.length} certificate(s)`])
    }
    const parsed = parseKeyAndChain(keys[0] as string, certs)
    if ('problem' in parsed) throw new ConfigError([`${certOrigin} "${certFile}": ${storeCertProblem(parsed)}`])
    tls.cert = parsed.cert
    tls.key = parsed.key
    if (log !== undefined) warnLooseKeyFile(certOrigin, certFile, log)
  }
  return tls
}

/** --session-store-cert's wording for what parseKeyAndChain found wrong (a client certificate: no name to check). */
function storeCertProblem (p: KeyAndChainProblem): string {
  switch (p.problem) {
    case 'unreadable key': return `unreadable private key (a passphrase-protected one is not supported): ${p.message}`
    case 'unreadable certificate': return `certificate ${p.index + 1} is unreadable: ${p.message}`
    case 'key mismatch': return 'the private key does not match the first certificate (put the client certificate first, then its chain)'
  }
}
