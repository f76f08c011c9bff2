import type tls from 'node:tls'
import type { CertificateBundle } from './certificates.js'
import { sessionIdContextFor, type ClientAuthFiles, type ClientVerify } from './client-auth.js'
import { RevokedCertificates } from './revoked-certificates.js'
import type { LineSettings, TlsMaterial } from './tls-material.js'
import type { TlsPolicy } from './tls-policy.js'

/**
 * The settings one certificate choice is served with, made once per material in a worker: the
 * global options, or a crt-list line's. What goes in the secure context (policy, CA, CRL,
 * tickets, session-ID context) and what goes on each socket (client certificate request, ALPN)
 * alike, so a handshake reads it off the choice its SNI picked: no lookup per connection.
 */
export interface Bind {
  policy: TlsPolicy
  clientVerify: ClientVerify
  clientAuth: ClientAuthFiles
  sessionTickets: boolean
  /** The base of its choices' session-ID contexts (client-auth.ts sessionIdContextFor). */
  sessionIdContext: string
  /** Per-socket options: client certificate request, ALPN. */
  socketOptions: Pick<tls.TLSSocketOptions, 'requestCert' | 'rejectUnauthorized' | 'ALPNProtocols'>
  /** Its CRL, for resumed sessions (OpenSSL checks it in full handshakes only). */
  revoked?: RevokedCertificates
  /** A client offering TLS 1.3 gets it. */
  tls13: boolean
  /** Where it comes from: `global`, or the first `--crt-list "FILE" line N` with these settings. */
  origin: string
  /** 0 for the global settings; lines with the same settings share one Bind (and a name's certificates of several key types combine). */
  id: number
}

/** A certificate as a worker serves it: the names it is routed for, and its settings. */
export interface ServedEntry {
  bundle: CertificateBundle
  names: readonly string[]
  excluded: readonly string[]
  bind: Bind
}

export interface GlobalBindSettings {
  policy: TlsPolicy
  clientVerify: ClientVerify
  alpn: string[]
  sessionTickets: boolean
}

/**
 * Every certificate of `material` as served, in order. `base`: --session-id-context, else the
 * default base (each choice derives its own from its certificates). A line's settings go into
 * its session-ID context (with its verify and CA, as the global ones do): a session made under
 * one line never resumes under a line with other settings, though the certificate be the same.
 */
export function servedEntries (material: TlsMaterial, global: GlobalBindSettings, base: string): { entries: ServedEntry[]; global: Bind } {
  const globalBind = makeBind({ ...global, clientAuth: material.clientAuth }, sessionIdContextFor(base, global.clientVerify, material.clientAuth.ca), 'global', 0)
  if (material.served === undefined) return { entries: material.certificates.map((bundle) => ({ bundle, names: bundle.names, excluded: [], bind: globalBind })), global: globalBind }
  const binds = new Map<string, Bind>()
  const entries = material.served.map((served) => {
    const bundle = material.certificates[served.certificate] as CertificateBundle
    const settings = served.settings
    let bind = globalBind
    if (settings !== undefined) {
      const same = sameSettings(settings)
      bind = binds.get(same) ?? makeBind(settings, sessionIdContextFor(`${base}\0${settings.key}`, settings.clientVerify, settings.clientAuth.ca), settings.origin, binds.size + 1)
      binds.set(same, bind)
    }
    return { bundle, names: served.names.length > 0 || served.excluded.length > 0 ? served.names : bundle.names, excluded: served.excluded, bind }
  })
  return { entries, global: globalBind }
}

/** Lines whose keywords and CA and CRL contents are the same are served alike. */
function sameSettings (settings: LineSettings): string {
  return JSON.stringify([settings.key, settings.clientAuth.ca ?? '', settings.clientAuth.crl ?? []])
}

function makeBind (s: GlobalBindSettings & { clientAuth: ClientAuthFiles }, sessionIdContext: string, origin: string, id: number): Bind {
  const crl = s.clientAuth.crl
  return {
    policy: s.policy,
    clientVerify: s.clientVerify,
    clientAuth: s.clientAuth,
    sessionTickets: s.sessionTickets,
    sessionIdContext,
    // Only what is asked for: an empty object costs a connection nothing.
    socketOptions: {
      ...(s.clientVerify !== 'none' ? { requestCert: true, rejectUnauthorized: s.clientVerify === 'require' } : {}),
      ...(s.alpn.length > 0 ? { ALPNProtocols: alpnWireFormat(s.alpn) } : {})
    },
    ...(s.clientVerify !== 'none' && crl !== undefined ? { revoked: new RevokedCertificates(crl) } : {}),
    tls13: s.policy.maxVersion === 'TLSv1.3',
    origin,
    id
  }
}

/** ALPN protocol names as OpenSSL takes them (each prefixed by its length), built once. */
function alpnWireFormat (protocols: string[]): Buffer {
  return Buffer.concat(protocols.map((p) => Buffer.concat([Buffer.from([Buffer.byteLength(p, 'latin1')]), Buffer.from(p, 'latin1')])))
}
