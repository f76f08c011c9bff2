import { ConfigConflictError } from '../errors.js'
import { formatHostPort, isLoopbackHost } from './host-port.js'
import type { NodeConfig } from './options.js'
import { checkTerminatorOptions } from './terminator-checks.js'

/**
 * Options that are each valid (options.ts checked them one by one) but do not work together.
 * Run before anything is read or bound, so a refused combination changes nothing; the message
 * names every option involved and what to give instead.
 */
export function checkOptionCombinations (config: NodeConfig): void {
  // Anyone who reaches a non-loopback admin port could drain the node: a token is required.
  if (config.adminTokenFile === '' && !isLoopbackHost(config.adminListen.host)) {
    throw new ConfigConflictError(`--admin-listen ${formatHostPort(config.adminListen)} is not a loopback address: give --admin-token-file with a bearer token (e.g. openssl rand -hex 32 > admin.token; chmod 600 admin.token), or listen on 127.0.0.1`)
  }
  if (config.haproxySocket === 'off' && config.haproxyServer !== '') {
    throw new ConfigConflictError('--haproxy-server needs --haproxy-socket (the HAProxy Runtime API to talk to)')
  }
  if (config.haproxySocket !== 'off' && config.haproxyServer === '') {
    throw new ConfigConflictError(`--haproxy-socket ${config.haproxySocket} needs --haproxy-server BACKEND/SERVER (this node's entry in HAProxy)`)
  }
  if (config.syncListen !== 'off' && config.syncFormat === 'v2' && config.syncSecretFile.length === 0) {
    throw new ConfigConflictError('--sync-listen needs --sync-secret-file with the farm secret (sync format v2 authenticates and encrypts every packet)')
  }
  checkTerminatorOptions(config)
}
