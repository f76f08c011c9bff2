import path from 'node:path'
import { ConfigConflictError } from '../errors.js'
import type { NodeConfig } from './options.js'

/** HAProxy sets this session-ID context on every SSL context (SHCTX_APPNAME); it cannot be changed. */
export const HAPROXY_SESSION_ID_CONTEXT = 'haproxy'

/**
 * The options of the terminator mode (`--terminator haproxy|tlsfleet`) against the others.
 * Called from checkOptionCombinations, before anything is read or bound.
 */
export function checkTerminatorOptions (config: NodeConfig): void {
  if (config.terminator === 'tlsfleet') {
    const stray = [
      config.terminatorSocket !== '' ? '--terminator-socket' : undefined,
      config.terminatorKeys !== '' ? '--terminator-keys' : undefined,
      config.terminatorFrontend.length > 0 ? '--terminator-frontend' : undefined
    ].filter((o) => o !== undefined)
    if (stray.length > 0) throw new ConfigConflictError(`${stray.join(', ')} only apply with --terminator haproxy (this node terminates TLS in its own workers)`)
    return
  }
  if (config.terminatorSocket === '') {
    throw new ConfigConflictError('--terminator haproxy needs --terminator-socket PATH|HOST:PORT: the local HAProxy\'s Runtime API (stats socket ... level admin)')
  }
  if (config.terminatorKeys === '') {
    throw new ConfigConflictError('--terminator haproxy needs --terminator-keys KEYFILE: the tls-ticket-keys file of the local HAProxy\'s bind line (write it with tlsfleet haproxy-keys)')
  }
  // The node rewrites this file after every rotation, from its own directory; HAProxy reads it
  // from its own: a relative path could name two files.
  if (!path.isAbsolute(config.terminatorKeys)) {
    throw new ConfigConflictError(`--terminator-keys ${config.terminatorKeys}: give an absolute path, on the HAProxy bind line too (tls-ticket-keys /etc/haproxy/...): this node rewrites the file from its own working directory, HAProxy reads it from its own`)
  }
  if (config.syncSecretFile.length === 0) {
    throw new ConfigConflictError('--terminator haproxy needs --sync-secret-file: the ticket keys pushed into HAProxy derive from the farm secret')
  }
  if (config.sessionTickets === 'off') {
    throw new ConfigConflictError('--session-tickets off does not go with --terminator haproxy: keeping HAProxy\'s ticket keys is what tlsfleet does in this mode')
  }
  if (config.syncFormat === 'stud') {
    throw new ConfigConflictError('--sync-format stud does not go with --terminator haproxy: stud keys its packets with the certificate\'s RSA key, and this node loads no certificate')
  }
  if (config.cert.length > 0) {
    throw new ConfigConflictError('--cert does not go with --terminator haproxy: the certificates are on the local HAProxy\'s bind line (crt)')
  }
  // TLS is HAProxy's own here (its bind line); --user is refused too: this node keeps writing
  // HAProxy's key file and talking to its Runtime API.
  const tlsOnly = [
    config.tlsProfile !== 'intermediate' ? '--tls-profile' : undefined,
    config.tlsMinVersion !== '' ? '--tls-min-version' : undefined,
    config.tlsMaxVersion !== '' ? '--tls-max-version' : undefined,
    config.ciphers !== '' ? '--ciphers' : undefined,
    config.ciphersuites !== '' ? '--ciphersuites' : undefined,
    config.ecdhCurves !== '' ? '--ecdh-curves' : undefined,
    config.sigalgs !== '' ? '--sigalgs' : undefined,
    config.preferServerCiphers !== '' ? '--prefer-server-ciphers' : undefined,
    config.alpn.length > 0 ? '--alpn' : undefined,
    config.clientVerify !== 'none' ? '--client-verify' : undefined,
    config.sniNomatch !== 'default' ? '--sni-nomatch' : undefined,
    config.certDir !== '' ? '--cert-dir' : undefined,
    config.crtList.length > 0 ? '--crt-list' : undefined,
    config.ocspDir !== '' ? '--ocsp-dir' : undefined,
    config.user !== '' ? '--user' : undefined
  ].filter((o) => o !== undefined)
  if (tlsOnly.length > 0) {
    throw new ConfigConflictError(`${tlsOnly.join(', ')} only apply with --terminator tlsfleet: with --terminator haproxy, TLS is set on the local HAProxy's bind line (see the migration table in docs/operations.md)`)
  }
  // The sockets are the local HAProxy's: keepalive is set there.
  if (config.tcpKeepalive > 0) {
    throw new ConfigConflictError('--tcp-keepalive only applies with --terminator tlsfleet: with --terminator haproxy, the connections are the local HAProxy\'s (option clitcpka, option srvtcpka)')
  }
  // Not given (or the former default, tlsfleet) stands for HAProxy's own context here; any other
  // value would say the farm shares sessions under a context HAProxy can never use.
  if (config.sessionIdContext !== HAPROXY_SESSION_ID_CONTEXT && config.sessionIdContext !== '' && config.sessionIdContext !== 'tlsfleet') {
    throw new ConfigConflictError(`--session-id-context ${config.sessionIdContext} does not go with --terminator haproxy: HAProxy always uses "${HAPROXY_SESSION_ID_CONTEXT}"; give --session-id-context ${HAPROXY_SESSION_ID_CONTEXT} to every tlsfleet-terminated node of the farm instead`)
  }
}
