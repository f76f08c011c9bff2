import crypto from 'node:crypto'
import { ConfigError } from '../errors.js'
import { CERTIFICATE_BLOCK, parseCertificateBlock, readCaCertificates, readPemFile, warnLooseKeyFile } from '../tls/pem-files.js'
import type { Logger } from '../util/logger.js'

/** What the store's TLS client presents and trusts, beyond Node's defaults (rediss:// only). */
export interface StoreTls {
  /** PEM CA certificates the server's certificate must chain to (replaces Node's public list). */
  ca?: string
  /** PEM client certificate (with its chain) and its key, for a server that asks for one. */
  cert?: string
  key?: string
}

const KEY_BLOCK = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]+?-----END \1PRIVATE KEY-----/g

/**
 * Read --session-store-ca and --session-store-cert at start: a refusal names the option, the
 * file and what is wrong, before the node serves (a client certificate the store refuses would
 * otherwise read only as "session store not reachable").
 */
export function loadStoreTls (caFile: string, certFile: string, log?: Logger): StoreTls {
  const tls: StoreTls = {}
  if (caFile !== '') tls.ca = readCaCertificates('--session-store-ca', caFile)
  if (certFile !== '') {
    const text = readPemFile('--session-store-cert', certFile)
    const keys = text.match(KEY_BLOCK) ?? []
    const certs = text.match(CERTIFICATE_BLOCK) ?? []
    if (keys.length !== 1 || certs.length === 0) {
      throw new ConfigError([`--session-store-cert "${certFile}": expected one private key and the client certificate (then its chain), found ${keys.length} key(s) and ${certs.length} certificate(s)`])
    }
    let key: crypto.KeyObject
    try {
      key = crypto.createPrivateKey(keys[0] as string)
    } catch (err) {
      throw new ConfigError([`--session-store-cert "${certFile}": unreadable private key (a passphrase-protected one is not supported): ${(err as Error).message}`])
    }
    if (!parseCertificateBlock('--session-store-cert', certFile, certs[0] as string, 0).checkPrivateKey(key)) {
      throw new ConfigError([`--session-store-cert "${certFile}": the private key does not match the first certificate (put the client certificate first, then its chain)`])
    }
    tls.cert = certs.join('\n') + '\n'
    tls.key = keys[0] as string
    if (log !== undefined) warnLooseKeyFile('--session-store-cert', certFile, log)
  }
  return tls
}
