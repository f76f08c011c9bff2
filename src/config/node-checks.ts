import net from 'node:net'
import { ConfigConflictError } from '../errors.js'
import { isMulticast, peerFamilyOf } from '../sync/sync-addresses.js'
import { DEFAULT_SYNC_CIPHER } from '../sync/sync-aead.js'
import { bindClash, formatHostPort, isLoopbackHost, type HostPort } from './host-port.js'
import { namedAsGiven } from './load.js'
import type { NodeConfig } from './options.js'
import { isDnsPeer } from './sync-peer.js'
import { checkTerminatorOptions } from './terminator-checks.js'

/**
 * Options that are each valid (options.ts checked them one by one) but do not work together.
 * Run before anything is read or bound, so a refused combination changes nothing; the message
 * names every option involved (as given: a flag, a TLSFLEET_* variable, a YAML key) and what
 * to give instead.
 */
export function checkOptionCombinations (config: NodeConfig): void {
  try {
    checkCombinations(config)
  } catch (err) {
    if (err instanceof ConfigConflictError) throw new ConfigConflictError(namedAsGiven(config, err.message))
    throw err
  }
}

function checkCombinations (config: NodeConfig): void {
  // Anyone who reaches a non-loopback admin port could drain the node: a token is required.
  if (config.adminTokenFile === '' && !isLoopbackHost(config.adminListen.host)) {
    throw new ConfigConflictError(`--admin-listen ${formatHostPort(config.adminListen)} is not a loopback address: give --admin-token-file with a bearer token (e.g. openssl rand -hex 32 > admin.token; chmod 600 admin.token), or listen on 127.0.0.1`)
  }
  // The token file protects every route; letting state changes through without it would undo
  // that for the ones that matter most (and, off loopback, for anyone on the network).
  if (config.adminAllowUnauthenticated === 'on' && config.adminTokenFile !== '') {
    throw new ConfigConflictError(`--admin-allow-unauthenticated on would let state changes through without the token --admin-token-file ${config.adminTokenFile} requires: give one or the other (unauthenticated state changes are for a loopback API on a single-user machine)`)
  }
  if (config.haproxySocket === 'off' && config.haproxyServer !== '') {
    throw new ConfigConflictError('--haproxy-server needs --haproxy-socket (the HAProxy Runtime API to talk to)')
  }
  if (config.haproxySocket !== 'off' && config.haproxyServer === '') {
    throw new ConfigConflictError(`--haproxy-socket ${config.haproxySocket} needs --haproxy-server BACKEND/SERVER (this node's entry in HAProxy)`)
  }
  // A worker stops waiting for L2 at --cache-get-timeout: a longer hold in L2 would only be lost.
  if (config.cacheMissWait >= config.cacheGetTimeout) {
    throw new ConfigConflictError(`--cache-miss-wait ${config.cacheMissWait} must be below --cache-get-timeout ${config.cacheGetTimeout} (ms): the worker stops waiting for L2 at the timeout`)
  }
  // Probes go out only on a connection silent for --tcp-keepalive; --idle-timeout closes it at its own bound.
  if (config.tcpKeepalive > 0 && config.tcpKeepalive >= config.idleTimeout) {
    throw new ConfigConflictError(`--tcp-keepalive ${config.tcpKeepalive} would never send a probe: --idle-timeout ${config.idleTimeout} closes a connection silent that long first; give --tcp-keepalive below --idle-timeout, or a longer --idle-timeout (connections meant to stay silent for hours)`)
  }
  if (config.syncListen !== 'off' && config.syncFormat === 'v2' && config.syncSecretFile.length === 0) {
    throw new ConfigConflictError('--sync-listen needs --sync-secret-file with the farm secret (sync format v2 authenticates and encrypts every packet)')
  }
  // hitch's format authenticates with its own HMAC and encrypts nothing: a cipher asked for would be ignored.
  if (config.syncFormat === 'stud' && config.syncCipher !== DEFAULT_SYNC_CIPHER) {
    throw new ConfigConflictError(`--sync-cipher ${config.syncCipher} has no effect with --sync-format stud (hitch's format signs each update with HMAC-SHA1 and does not encrypt): drop --sync-cipher, or use --sync-format v2`)
  }
  // The store holds sessions with their master secrets: they are sealed with the farm key.
  if (config.sessionStore !== 'off' && config.syncSecretFile.length === 0) {
    throw new ConfigConflictError('--session-store needs --sync-secret-file with the farm secret (every value in the store is sealed with a key derived from it)')
  }
  // The worker gives up on L2 after --cache-get-timeout; a store lookup that may take longer
  // would only ever answer a worker that has already moved on.
  if (config.sessionStore !== 'off' && config.sessionStoreTimeout >= config.cacheGetTimeout) {
    throw new ConfigConflictError(`--session-store-timeout ${config.sessionStoreTimeout} ms must be shorter than --cache-get-timeout ${config.cacheGetTimeout} ms (the worker stops waiting for L2 then)`)
  }
  for (const [option, file] of [['--session-store-ca', config.sessionStoreCa], ['--session-store-cert', config.sessionStoreCert]] as const) {
    if (file !== '' && (config.sessionStore === 'off' || !config.sessionStore.tls)) {
      throw new ConfigConflictError(`${option} needs a --session-store with TLS (rediss://, rediss+sentinel://, rediss+cluster://)`)
    }
  }
  if (config.sessionStore !== 'off' && config.terminator === 'haproxy') {
    throw new ConfigConflictError('--session-store does not go with --terminator haproxy: the local HAProxy keeps its own session cache, which the store cannot fill or read')
  }
  if (config.syncPeer.some(isDnsPeer) && config.syncListen === 'off') {
    throw new ConfigConflictError('--sync-peer dns:NAME:PORT needs --sync-listen (the farm sync socket the peers are sent to from)')
  }
  checkSyncPeerFamilies(config)
  checkListenerClashes(config)
  checkTerminatorOptions(config)
  checkTlsCombinations(config)
  checkAdmissionCombinations(config)
}

/**
 * The sync socket has the family of --sync-listen's address: one on an IPv4 address cannot
 * send to IPv6 peers, one on an IPv6 address (other than [::]) not to IPv4 ones. Every send to
 * such a peer would fail (found by DNS, such addresses are left out instead).
 */
function checkSyncPeerFamilies (config: NodeConfig): void {
  if (config.syncListen === 'off' || isMulticast(config.syncListen.host)) return
  const listen = config.syncListen
  const family = peerFamilyOf(listen.host)
  for (const peer of config.syncPeer) {
    if (isDnsPeer(peer) || net.isIP(peer.host) === 0) continue
    const v4 = net.isIPv4(peer.host)
    if ((family === 'ipv4' && !v4) || (family === 'ipv6' && v4)) {
      throw new ConfigConflictError(`--sync-peer ${formatHostPort(peer)} is an ${v4 ? 'IPv4' : 'IPv6'} address, but --sync-listen ${formatHostPort(listen)} makes an ${family === 'ipv4' ? 'IPv4' : 'IPv6'} socket, which cannot send to it: listen on [::]:${listen.port} to reach both families`)
    }
  }
}

/** Connection limits and the PROXY header's trust list. */
function checkAdmissionCombinations (config: NodeConfig): void {
  if (config.proxyFrom.length > 0 && config.proxyProtocolIn === 'off') {
    throw new ConfigConflictError('--proxy-from has no effect with --proxy-protocol-in off: give --proxy-protocol-in v1, v2 or auto')
  }
  // Each worker admits its share; a worker with no share could never serve.
  if (config.maxConnections > 0 && config.maxConnections < config.workers) {
    throw new ConfigConflictError(`--max-connections ${config.maxConnections} is split over ${config.workers} workers: give at least one per worker, or fewer --workers`)
  }
  if (config.maxHandshakesPerSource > 0 && config.maxHandshakesPerSource < config.workers) {
    throw new ConfigConflictError(`--max-handshakes-per-source ${config.maxHandshakesPerSource} is split over ${config.workers} workers (each admits at least one per source, so a source would get ${config.workers}): give at least one per worker, or fewer --workers`)
  }
  // HAProxy would send more than the node admits: the surplus is refused instead of queued in HAProxy.
  if (config.maxConnections > 0 && config.maxconn > config.maxConnections) {
    throw new ConfigConflictError(`--maxconn ${config.maxconn} (what the agent tells HAProxy) is above --max-connections ${config.maxConnections} (what the node admits): HAProxy would send connections the node refuses; leave --maxconn at 0 and the agent sends a value below --max-connections`)
  }
  if (config.terminator === 'haproxy') {
    const stray = [
      config.maxConnections > 0 ? '--max-connections' : undefined,
      config.maxHandshakesPerSource > 0 ? '--max-handshakes-per-source' : undefined,
      config.proxyFrom.length > 0 ? '--proxy-from' : undefined
    ].filter((o) => o !== undefined)
    if (stray.length > 0) throw new ConfigConflictError(`${stray.join(', ')} only apply with --terminator tlsfleet: with --terminator haproxy, set maxconn and the PROXY sources on the local HAProxy's bind line`)
  }
}

function checkTlsCombinations (config: NodeConfig): void {
  if (config.clientVerify !== 'none' && config.clientCa === '') {
    throw new ConfigConflictError(`--client-verify ${config.clientVerify} needs --client-ca with the CA certificates client certificates must chain to`)
  }
  if (config.clientVerify === 'none' && (config.clientCa !== '' || config.crl !== '')) {
    throw new ConfigConflictError(`${config.clientCa !== '' ? '--client-ca' : '--crl'} has no effect with --client-verify none: give --client-verify optional or require`)
  }
  if (config.crl !== '' && config.clientCa === '') {
    throw new ConfigConflictError('--crl needs --client-ca (the CAs whose revocations it lists)')
  }
  for (const kind of ['ssl', 'crc32c'] as const) {
    if (config.proxyTlv.includes(kind) && config.proxyProtocolOut !== 'v2') {
      throw new ConfigConflictError(`--proxy-tlv ${kind} needs --proxy-protocol-out v2 (TLVs exist only in PROXY protocol v2; it is ${config.proxyProtocolOut})`)
    }
  }
  if (config.group !== '' && config.user === '') {
    throw new ConfigConflictError('--group needs --user (the user to run as)')
  }
}

/** The node's own TCP listeners (--sync-listen is UDP); --listen only where its workers bind it. */
function tcpListeners (config: NodeConfig): Array<{ option: string; address: HostPort }> {
  const listeners = config.terminator === 'tlsfleet' ? config.listen.map((address) => ({ option: '--listen', address })) : []
  listeners.push({ option: '--admin-listen', address: config.adminListen })
  if (config.agentListen !== 'off') listeners.push({ option: '--agent-listen', address: config.agentListen })
  return listeners
}

/**
 * Two listeners of this node on one address: the second bind fails as if another process held
 * it ("already in use by another process"), or, --listen being SO_REUSEPORT, both bind and
 * the kernel sends each connection to one of them unseen. Named here, before anything binds.
 */
function checkListenerClashes (config: NodeConfig): void {
  const listeners = tcpListeners(config)
  for (const [i, first] of listeners.entries()) {
    for (const second of listeners.slice(i + 1)) {
      const why = bindClash(first.address, second.address)
      if (why === undefined) continue
      const advice = first.option === second.option ? `drop one ${second.option}` : `give ${second.option} another address or port`
      throw new ConfigConflictError(`${first.option} ${formatHostPort(first.address)} and ${second.option} ${formatHostPort(second.address)} ${why}: each listener of the node needs an address of its own; ${advice}`)
    }
  }
}
