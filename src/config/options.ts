import net from 'node:net'
import os from 'node:os'
import { z } from 'zod'
import { parseCidr, type Cidr } from './cidr.js'
import { formatHostPort, parseHostPort, type HostPort } from './host-port.js'
import { parseStoreUrl } from './store-url.js'
import { DEFAULT_SYNC_CIPHER, SYNC_CIPHERS } from '../sync/sync-aead.js'
import { parseSyncPeer, type SyncPeer } from './sync-peer.js'

/**
 * The single table of `tlsfleet node` settings. Each entry is at once a CLI flag (`--key`),
 * a YAML key (`key:`) and an environment variable (`TLSFLEET_KEY`), so the three can never
 * drift apart. `expected` is what an operator reads when a value is refused.
 */
interface OptionSpec<T> {
  description: string
  expected: string
  schema: z.ZodType<T>
  default?: T | (() => T)
  multiple?: boolean
  /** An empty list (`TLSFLEET_X=""`, YAML `x: []`) means none; elsewhere an empty value is refused. */
  emptyIsNone?: boolean
  /** Name of the value in --help, e.g. HOST:PORT. */
  valueName?: string
  /** The default as --help shows it, where the value alone would not say it (computed, or none). */
  defaultHelp?: string
}

/**
 * A string option parsed by `parse`, which returns the value or what is wrong with it; `word`
 * (such as "off") is taken as it is. One transform, not a union with a literal: zod reports a
 * union that fails as "Invalid input", and `parse`'s reason was lost.
 */
function parsedBy<T, W extends string = never> (parse: (text: string) => T | string, word?: W) {
  return z.string().transform((text, ctx): T | W => {
    if (word !== undefined && text === word) return word
    const parsed = parse(text)
    if (typeof parsed === 'string') {
      ctx.addIssue({ code: 'custom', message: parsed })
      return z.NEVER
    }
    return parsed
  })
}

const hostPort = parsedBy((text) => parseHostPort(text))
const syncPeer = parsedBy(parseSyncPeer)
/** A --proxy-from entry: a CIDR range, or "any". */
const proxySource = z.string().transform((text, ctx): Cidr | 'any' => {
  if (text === 'any') return 'any'
  const parsed = parseCidr(text)
  if (typeof parsed !== 'string') return parsed
  ctx.addIssue({ code: 'custom', message: parsed })
  return z.NEVER
})

/** A Runtime API address: a unix socket path (with a "/") or HOST:PORT (optionally ipv4@/ipv6@). */
function isRuntimeApiTarget (text: string): boolean {
  return text.includes('/') || typeof parseHostPort(text.replace(/^ipv[46]@/, '')) !== 'string'
}

/**
 * A name the node puts in Runtime API commands (--terminator-keys is the ring's name in `show
 * tls-keys FILE` and `set ssl tls-key FILE KEY`): whitespace splits HAProxy's arguments, `;` and
 * a line break end its command, so the client refuses every command holding one
 * (runtime-api.ts). Refused at load instead, naming the character, not at each command later.
 */
const runtimeApiWord = z.string().superRefine((text, ctx) => {
  const bad = /[\s;\0]/.exec(text)?.[0]
  if (bad !== undefined) ctx.addIssue({ code: 'custom', message: runtimeApiProblem(bad) })
})

function runtimeApiProblem (bad: string): string {
  if (bad === ';') return 'contains ";", which ends a command in HAProxy\'s Runtime API'
  if (bad === '\n' || bad === '\r') return 'contains a line break, which ends a command in HAProxy\'s Runtime API'
  if (bad === '\0') return 'contains a NUL byte, which the Runtime API client refuses'
  return `contains whitespace (${JSON.stringify(bad)}), which splits an argument in HAProxy's Runtime API`
}

/** Whole numbers as text (a sign is let through so that "-1" is refused by the range, not the form). */
const INTEGER_TEXT = /^-?\d+$/
/** Decimal numbers as text: "300", "0.5". */
const DECIMAL_TEXT = /^-?\d+(\.\d+)?$/

/** What a value that is no number is, for the message: "a boolean", "a list". */
function kindOf (value: unknown): string {
  if (value === null) return 'empty'
  if (Array.isArray(value)) return 'a list'
  // In words of the YAML an operator wrote, and English: not "a object", "a undefined".
  if (typeof value === 'object') return 'a mapping'
  if (value === undefined) return 'nothing'
  return `a ${typeof value}`
}

/**
 * Decimal text: flags and environment variables are text, and so are YAML numbers, handed on as
 * written (yaml-values.ts). A number is taken as is only from a caller of loadConfig in code.
 * Not z.coerce.number(): Number() turns true into 1, "" and "  " into 0, and reads "0x10",
 * "0b11", "0o7" and "1e3", none of which an operator writing a count or seconds means.
 */
function numberFrom (text: RegExp, form: string): z.ZodType<number> {
  return z.unknown().transform((value, ctx): number => {
    // Infinity and NaN pass typeof; zod's refusal of them gave no reason an operator reads.
    if (typeof value === 'number' && Number.isFinite(value)) return value
    if (typeof value === 'number') {
      ctx.addIssue({ code: 'custom', message: `${String(value)}, not a finite number` })
      return z.NEVER
    }
    if (typeof value === 'string' && text.test(value.trim())) return Number(value.trim())
    ctx.addIssue({ code: 'custom', message: typeof value === 'string' ? `not ${form}` : `${kindOf(value)}, not a number` })
    return z.NEVER
  })
}

const int = (min: number, max: number): z.ZodType<number> =>
  numberFrom(INTEGER_TEXT, 'an integer in decimal digits').pipe(z.number().int().min(min).max(max))
const seconds = (min: number, max: number): z.ZodType<number> =>
  numberFrom(DECIMAL_TEXT, 'a decimal number (digits, optionally with a fraction such as 0.5)').pipe(z.number().min(min).max(max))
const nonEmpty = z.string().min(1)

/**
 * A list given as repeated flags, a YAML list, or comma-separated text in any of them
 * (`--alpn h2,http/1.1`), validated item by item. An empty item (`h2,,http/1.1`, a trailing
 * comma) is refused, as in a variable's list: read without it, the list would not be the one
 * written.
 */
const commaList = <T>(item: z.ZodType<T, string>): z.ZodType<T[], unknown> =>
  z.array(z.string()).transform((values, ctx) => {
    const items = values.flatMap((v) => v.split(',')).map((v) => v.trim())
    const blank = items.indexOf('')
    if (blank < 0) return items
    ctx.addIssue({ code: 'custom', message: `an empty item, item ${blank + 1} of ${items.length}: remove the extra comma` })
    return z.NEVER
  }).pipe(z.array(item))

const TLS_VERSIONS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const
const tlsVersion = z.union([z.literal(''), z.enum(TLS_VERSIONS)])

function spec<T> (s: OptionSpec<T>): OptionSpec<T> { return s }

export const OPTIONS = {
  listen: spec({
    description: 'address to accept TLS connections on (repeatable; IPv6 as [::1]:8443)',
    expected: 'HOST:PORT',
    valueName: 'HOST:PORT',
    schema: z.array(hostPort).min(1),
    multiple: true,
    default: () => [{ host: '127.0.0.1', port: 8443 }]
  }),
  backend: spec({
    description: 'where to forward the plaintext, or "demo" for the built-in demo backend',
    expected: 'HOST:PORT or "demo"',
    valueName: 'HOST:PORT',
    schema: parsedBy(parseHostPort, 'demo'),
    default: 'demo' as const
  }),
  workers: spec({
    description: 'number of worker processes',
    expected: 'an integer from 1 to 256',
    schema: int(1, 256),
    default: () => os.availableParallelism(),
    defaultHelp: 'one per core'
  }),
  'worker-nice': spec({
    description: 'how many nice steps the workers run below the primary, so that under saturating load the primary (agent-check, /health, L2, farm sync) gets the CPU at once; for a dedicated node (the workers then also yield to any other process of the machine); 0 = the same priority',
    expected: 'an integer from 0 to 19',
    schema: int(0, 19),
    default: 0
  }),
  'worker-hang-timeout': spec({
    description: 'seconds a worker may leave the primary\'s once-a-second report requests unanswered (an event loop stuck in a loop or a blocking call) before it is killed and replaced; it counts as hung only after three such requests in a row, so at least about 3 s; 0 = never',
    expected: 'a number of seconds from 0 to 3600',
    schema: seconds(0, 3600),
    default: 10
  }),
  cert: spec({
    description: 'PEM file with key, certificate and chain (repeatable; the first is the default for SNI)',
    expected: 'a file path',
    valueName: 'FILE',
    schema: z.array(nonEmpty),
    multiple: true,
    default: () => [] as string[],
    defaultHelp: 'a self-signed certificate for localhost, generated into --state-dir'
  }),
  'state-dir': spec({
    description: 'directory for generated and kept files: the self-signed certificate used when no --cert is given, the admin token, and the farm sync\'s replay state across restarts (must be writable; one per node)',
    expected: 'a directory path',
    valueName: 'DIR',
    schema: nonEmpty,
    default: '.tlsfleet'
  }),
  'tls-profile': spec({
    description: 'TLS policy after Mozilla\'s server-side TLS guidelines: modern (TLS 1.3 only), intermediate, or old (TLS 1.0 and up, for very old clients)',
    expected: 'one of modern, intermediate, old',
    schema: z.enum(['modern', 'intermediate', 'old']),
    default: 'intermediate' as const
  }),
  'tls-min-version': spec({
    description: 'lowest TLS version accepted, overriding the profile\'s',
    expected: `one of ${TLS_VERSIONS.join(', ')}`,
    valueName: 'VERSION',
    schema: tlsVersion,
    default: '' as const,
    defaultHelp: 'the profile\'s'
  }),
  'tls-max-version': spec({
    description: 'highest TLS version accepted, overriding the profile\'s',
    expected: `one of ${TLS_VERSIONS.join(', ')}`,
    valueName: 'VERSION',
    schema: tlsVersion,
    default: '' as const,
    defaultHelp: 'the profile\'s'
  }),
  ciphers: spec({
    description: 'TLS 1.2 and older cipher list in OpenSSL syntax, overriding the profile\'s',
    expected: 'an OpenSSL cipher list (e.g. ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256)',
    valueName: 'LIST',
    schema: z.string(),
    default: '',
    defaultHelp: 'the profile\'s'
  }),
  ciphersuites: spec({
    description: 'TLS 1.3 cipher suites, colon-separated, overriding the profile\'s',
    expected: 'TLS 1.3 suite names separated by ":" (e.g. TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256)',
    valueName: 'LIST',
    schema: z.string(),
    default: '',
    defaultHelp: 'the profile\'s'
  }),
  'ecdh-curves': spec({
    description: 'key exchange groups (curves), colon-separated, most preferred first, overriding the profile\'s',
    expected: 'group names separated by ":" (e.g. X25519:prime256v1:secp384r1)',
    valueName: 'LIST',
    schema: z.string(),
    default: '',
    defaultHelp: 'the profile\'s'
  }),
  sigalgs: spec({
    description: 'signature algorithms the node may sign its handshakes with (and accepts in a client certificate\'s handshake signature), colon-separated in OpenSSL syntax, as HAProxy\'s sigalgs; a client offering none of them cannot connect',
    expected: 'signature algorithms separated by ":" (e.g. ECDSA+SHA256:RSA-PSS+SHA256 or ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256)',
    valueName: 'LIST',
    schema: z.string(),
    default: '',
    defaultHelp: 'OpenSSL\'s'
  }),
  'prefer-server-ciphers': spec({
    description: 'choose the cipher by the server\'s order instead of the client\'s',
    expected: 'one of on, off',
    schema: z.union([z.literal(''), z.enum(['on', 'off'])]),
    default: '' as const,
    defaultHelp: 'the profile\'s (on for old, off otherwise)'
  }),
  alpn: spec({
    description: 'ALPN protocols offered, most preferred first (e.g. h2,http/1.1); the one negotiated reaches the backend in the PROXY v2 ALPN TLV',
    expected: 'protocol names of 1 to 255 printable ASCII characters, comma-separated',
    valueName: 'LIST',
    schema: commaList(z.string().regex(/^[\x21-\x7e]{1,255}$/, 'printable ASCII without spaces, 1 to 255 characters')),
    multiple: true,
    default: () => [] as string[],
    defaultHelp: 'none (no ALPN)'
  }),
  'proxy-tlv': spec({
    description: 'TLVs added to the PROXY v2 header sent to the backend: alpn, authority (the SNI), ssl (version, cipher, client certificate CN), crc32c (the header\'s checksum), or none',
    expected: 'a comma-separated list of alpn, authority, ssl, crc32c, or none',
    valueName: 'LIST',
    schema: commaList(z.enum(['alpn', 'authority', 'ssl', 'crc32c', 'none'])).refine((list) => !list.includes('none') || list.length === 1, 'none cannot be combined with other TLVs'),
    multiple: true,
    default: () => ['alpn', 'authority'] as Array<'alpn' | 'authority' | 'ssl' | 'crc32c' | 'none'>
  }),
  'client-verify': spec({
    description: 'client certificates: none (not asked for), optional (verified when presented), require (a verified one is needed)',
    expected: 'one of none, optional, require',
    schema: z.enum(['none', 'optional', 'require']),
    default: 'none' as const
  }),
  'client-ca': spec({
    description: 'PEM file with the CA certificates client certificates must chain to (needed with --client-verify optional|require)',
    expected: 'a file path',
    valueName: 'FILE',
    schema: z.string(),
    default: ''
  }),
  crl: spec({
    description: 'PEM file with certificate revocation lists checked against client certificates (one for every CA of the chain)',
    expected: 'a file path',
    valueName: 'FILE',
    schema: z.string(),
    default: ''
  }),
  'sni-nomatch': spec({
    description: 'a client whose SNI names no certificate: default (gets the default certificate) or abort (the handshake is refused)',
    expected: 'one of default, abort',
    schema: z.enum(['default', 'abort']),
    default: 'default' as const
  }),
  'cert-dir': spec({
    description: 'directory of PEM files (key, certificate and chain each) loaded besides --cert; SNI names come from the certificates; re-read on SIGHUP',
    expected: 'a directory path',
    valueName: 'DIR',
    schema: z.string(),
    default: ''
  }),
  'crt-list': spec({
    description: 'HAProxy crt-list file: one certificate a line with its own TLS settings ([alpn, ciphers, ciphersuites, curves, sigalgs, ssl-min-ver, ssl-max-ver, verify, ca-file, crl-file, no-tls-tickets]) and SNI filters; loaded after --cert, before --cert-dir (repeatable); re-read on SIGHUP',
    expected: 'a file path',
    valueName: 'FILE',
    schema: z.array(nonEmpty),
    multiple: true,
    default: () => [] as string[],
    defaultHelp: 'none'
  }),
  'ocsp-dir': spec({
    description: 'enables OCSP stapling: responses fetched from each certificate\'s responder are verified, kept in this directory and stapled',
    expected: 'a directory path',
    valueName: 'DIR',
    schema: z.string(),
    default: ''
  }),
  'ocsp-refresh-interval': spec({
    description: 'longest time in seconds between two fetches of a certificate\'s OCSP response (sooner when half of its validity has passed)',
    expected: 'an integer number of seconds from 10 to 604800',
    schema: int(10, 604800),
    default: 1800
  }),
  user: spec({
    description: 'user to run as once the listeners are bound and the keys and secrets read (the node must start as root)',
    expected: 'a user name or numeric id',
    valueName: 'USER',
    schema: z.string().regex(/^$|^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}\$?$/, 'a user name or id'),
    default: '',
    defaultHelp: 'none (keep the starting user)'
  }),
  group: spec({
    description: 'group to run as with --user',
    expected: 'a group name or numeric id',
    valueName: 'GROUP',
    schema: z.string().regex(/^$|^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}\$?$/, 'a group name or id'),
    default: '',
    defaultHelp: 'the primary group of --user'
  }),
  'session-timeout': spec({
    description: 'TLS session lifetime in seconds (L1, L2 and farm sync)',
    expected: 'an integer number of seconds from 1 to 86400',
    schema: int(1, 86400),
    default: 300
  }),
  'session-id-context': spec({
    description: 'TLS session-ID context for every certificate, so sessions resume across certificates as on HAProxy or hitch ("haproxy" in a farm with HAProxy-terminated nodes, "hitch" to share with hitch); must be the same on every node of a farm',
    expected: 'a string of 1 to 32 bytes',
    valueName: 'STRING',
    schema: z.string().min(1).refine((s) => Buffer.byteLength(s) <= 32, 'longer than 32 bytes'),
    // Not given: each certificate gets its own (a session resumes only under the certificate it was made with).
    default: '',
    defaultHelp: 'one per certificate, from its fingerprint'
  }),
  'cache-size': spec({
    description: 'L2 (node-wide) session cache size in entries',
    expected: 'an integer from 1 to 10000000',
    schema: int(1, 10_000_000),
    default: 100_000
  }),
  'cache-max-bytes': spec({
    description: 'L2 session cache bound in bytes of the primary\'s memory: each session counts what it costs a running primary (about 600 bytes for a typical 160-byte TLS 1.2 session; see docs/benchmarks.md, L2 memory)',
    expected: 'an integer number of bytes from 4096 to 17179869184',
    schema: int(4096, 16 * 1024 ** 3),
    default: 64 * 1024 * 1024
  }),
  'l1-size': spec({
    description: 'L1 (per-worker) session cache size in entries',
    expected: 'an integer from 1 to 10000000',
    schema: int(1, 10_000_000),
    default: 20_000
  }),
  'cache-get-timeout': spec({
    description: 'how long a worker waits for the primary on an L1 miss before doing a full handshake (ms)',
    expected: 'an integer number of milliseconds from 1 to 5000',
    schema: int(1, 5000),
    default: 25
  }),
  'cache-miss-wait': spec({
    description: 'how long L2 holds a lookup that missed, in case the session is on its way from a peer node or another worker (ms; 0 = answer at once); below --cache-get-timeout',
    expected: 'an integer number of milliseconds from 0 to 1000',
    schema: int(0, 1000),
    default: 3
  }),
  'proxy-protocol-in': spec({
    description: 'PROXY protocol expected from the load balancer: off, v1, v2 or auto',
    expected: 'one of off, v1, v2, auto',
    schema: z.enum(['off', 'v1', 'v2', 'auto']),
    default: 'off' as const
  }),
  'proxy-from': spec({
    description: 'peers whose PROXY headers are believed, as addresses or CIDR ranges (repeatable or comma-separated, e.g. 10.0.0.2,10.0.1.0/24): a header from any other peer closes the connection; "any" = every peer',
    expected: 'IPv4 or IPv6 addresses or CIDR ranges (10.0.0.0/8, 2001:db8::/32), comma-separated, or "any"',
    valueName: 'CIDR,...',
    schema: commaList(proxySource).refine((list) => !list.includes('any') || list.length === 1, 'any cannot be combined with addresses'),
    multiple: true,
    default: () => [] as Array<Cidr | 'any'>,
    defaultHelp: 'any peer, with a warning at start'
  }),
  'proxy-protocol-out': spec({
    description: 'PROXY protocol header sent to the backend: off, v1 or v2',
    expected: 'one of off, v1, v2',
    schema: z.enum(['off', 'v1', 'v2']),
    default: 'off' as const
  }),
  'handshake-timeout': spec({
    description: 'seconds a client has to send its PROXY header and finish the TLS handshake',
    expected: 'a number of seconds from 0.1 to 600',
    schema: seconds(0.1, 600),
    default: 10
  }),
  'max-connections': spec({
    description: 'most client connections the node holds at once, split evenly over the workers; beyond it a new connection is closed at once and counted; 0 = only the bound the file-descriptor limit sets (two descriptors per connection)',
    expected: 'an integer from 0 to 10000000',
    schema: int(0, 10_000_000),
    default: 0,
    defaultHelp: '0 (what the file-descriptor limit allows)'
  }),
  'max-handshakes-per-source': spec({
    description: 'most connections one client address may have in the PROXY header and TLS handshake at once (the address the PROXY header gives, else the TCP peer), split over the workers; 0 = no cap',
    expected: 'an integer from 0 to 1000000',
    schema: int(0, 1_000_000),
    default: 0
  }),
  'idle-timeout': spec({
    description: 'seconds without traffic in either direction before a proxied connection is closed',
    expected: 'a number of seconds from 1 to 86400',
    schema: seconds(1, 86400),
    default: 300
  }),
  'fin-timeout': spec({
    description: 'seconds without traffic a proxied connection may stay half-closed (one side has sent its end, the other has not) before it is closed, as HAProxy\'s timeout client-fin/server-fin; 0 = --idle-timeout applies',
    expected: 'a number of seconds from 0 to 86400',
    schema: seconds(0, 86400),
    default: 0
  }),
  'tcp-keepalive': spec({
    description: 'seconds a proxied connection\'s client and backend sockets may be silent before the kernel sends TCP keepalive probes (then one a second, 10 unanswered close it), as hitch\'s tcp-keepalive and HAProxy\'s option clitcpka/srvtcpka; for connections --idle-timeout lets stay idle longer than a firewall or NAT keeps their state; 0 = off',
    expected: 'an integer number of seconds from 0 to 32767',
    schema: int(0, 32767),
    default: 0
  }),
  'backend-refresh': spec({
    description: 'seconds a looked-up --backend host name is used before it is looked up again (a failed lookup keeps the last addresses); 0 = look it up for every connection',
    expected: 'a number of seconds from 0 to 86400',
    schema: seconds(0, 86400),
    default: 10
  }),
  'connect-timeout': spec({
    description: 'seconds to wait for the backend to accept a connection',
    expected: 'a number of seconds from 0.1 to 600',
    schema: seconds(0.1, 600),
    default: 5
  }),
  'grace-period': spec({
    description: 'seconds open connections may take to finish on shutdown',
    expected: 'a number of seconds from 0 to 3600',
    schema: seconds(0, 3600),
    default: 30
  }),
  'accept-model': spec({
    description: 'how workers accept: reuseport (one SO_REUSEPORT socket per worker) or shared (one socket, shared handle)',
    expected: 'one of reuseport, shared',
    schema: z.enum(['reuseport', 'shared']),
    default: 'reuseport' as const
  }),
  'session-tickets': spec({
    description: 'issue TLS session tickets under farm-wide keys (TLS 1.3, and TLS 1.2 clients that ask); off = session IDs only',
    expected: 'one of on, off',
    schema: z.enum(['on', 'off']),
    default: 'on' as const
  }),
  'ticket-rotation': spec({
    description: 'seconds between ticket key rotations (every node derives the same key for each period)',
    expected: 'an integer number of seconds from 1 to 604800',
    schema: int(1, 604800),
    default: 3600
  }),
  'node-id': spec({
    description: 'this node\'s name in logs, metrics and sync packets',
    expected: 'a string of 1 to 64 characters [A-Za-z0-9._-]',
    valueName: 'NAME',
    schema: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'only letters, digits, ".", "_" and "-"'),
    default: () => `${os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 40)}-${process.pid}`,
    defaultHelp: 'the host name and the process id'
  }),
  'sync-listen': spec({
    description: 'UDP address for farm sync; a multicast address joins that group (off when unset)',
    expected: 'HOST:PORT or "off"',
    valueName: 'HOST:PORT',
    schema: parsedBy(parseHostPort, 'off'),
    default: 'off' as const
  }),
  'sync-peer': spec({
    description: 'a peer node\'s sync address to send updates to (repeatable); dns:NAME:PORT = every A and AAAA record of NAME, looked up again every --sync-peer-refresh seconds',
    expected: 'HOST:PORT or dns:NAME:PORT',
    valueName: 'HOST:PORT|dns:NAME:PORT',
    schema: z.array(syncPeer),
    multiple: true,
    // docker-compose.multicast.yml and .store.yml clear the base file's peers this way.
    emptyIsNone: true,
    default: () => [] as SyncPeer[]
  }),
  'sync-peer-refresh': spec({
    description: 'seconds between DNS lookups of the dns:NAME:PORT peers (peers that appear are added, those that vanish dropped)',
    expected: 'a number of seconds from 0.5 to 3600',
    schema: seconds(0.5, 3600),
    default: 5
  }),
  'sync-dns-server': spec({
    description: 'DNS server for the dns: peers, IP or IP:PORT',
    expected: 'an IP address, optionally with :PORT (IPv6 as [::1]:53)',
    valueName: 'IP[:PORT]',
    schema: z.string().refine((s) => s === '' || net.isIP(s) !== 0 || (typeof parseHostPort(s) !== 'string' && net.isIP((parseHostPort(s) as HostPort).host) !== 0), 'not an IP address or IP:PORT'),
    default: '',
    defaultHelp: 'the servers in /etc/resolv.conf'
  }),
  'sync-interface': spec({
    description: 'for multicast: interface name or address to join and send on, and optional TTL (IFACE[,TTL])',
    expected: 'IFACE or IFACE,TTL with TTL from 1 to 255',
    valueName: 'IFACE[,TTL]',
    schema: z.string().regex(/^[^,\s]+(,([1-9]\d?|1\d\d|2[0-4]\d|25[0-5]))?$/, 'expected IFACE or IFACE,TTL'),
    default: '',
    defaultHelp: 'the interface the kernel picks, TTL 1'
  }),
  'sync-secret-file': spec({
    description: 'farm secret (>= 32 bytes, mode 0600); repeat to accept an old secret during a change-over, the first one sends',
    expected: 'a file path',
    valueName: 'FILE',
    schema: z.array(nonEmpty),
    multiple: true,
    default: () => [] as string[]
  }),
  'sync-format': spec({
    description: 'sync wire format: v2 (authenticated and encrypted) or stud (hitch/stud compatible, NOT encrypted)',
    expected: 'one of v2, stud',
    schema: z.enum(['v2', 'stud']),
    default: 'v2' as const
  }),
  'sync-cipher': spec({
    description: 'AEAD that seals this node\'s v2 sync packets (every node opens both): chacha20-poly1305 (libsodium: a quarter less CPU per update received) or aes-256-gcm (the one cipher of nodes that predate this option)',
    expected: 'one of chacha20-poly1305, aes-256-gcm',
    schema: z.enum(SYNC_CIPHERS),
    default: DEFAULT_SYNC_CIPHER
  }),
  'sync-max-skew': spec({
    description: 'seconds a sync packet may be dated in the future (clock differences between nodes)',
    expected: 'an integer number of seconds from 0 to 300',
    schema: int(0, 300),
    default: 5
  }),
  'sync-recv-buffer': spec({
    description: 'farm sync UDP receive buffer in bytes, room for bursts of updates (the kernel caps it at net.core.rmem_max)',
    expected: 'an integer number of bytes from 65536 to 1073741824',
    valueName: 'BYTES',
    schema: int(64 * 1024, 1024 ** 3),
    default: 4 * 1024 * 1024
  }),
  'warm-join-timeout': spec({
    description: 'seconds to wait at start for a session snapshot from peers before serving anyway',
    expected: 'a number of seconds from 0 to 60',
    schema: seconds(0, 60),
    default: 2
  }),
  'session-store': spec({
    description: 'shared session store behind L2 (Redis or Valkey): redis://HOST:PORT[/DB], rediss:// for TLS, redis+sentinel://H1:P1,H2:P2/MASTER[/DB], redis+cluster://H1:P1,H2:P2; or off',
    expected: 'off, redis://HOST:PORT[/DB], rediss://..., redis+sentinel://HOSTS/MASTER[/DB] or redis+cluster://HOSTS',
    valueName: 'URL',
    schema: parsedBy(parseStoreUrl, 'off'),
    default: 'off' as const
  }),
  'session-store-timeout': spec({
    description: 'how long the primary waits for the shared store on an L2 miss before the handshake goes on as a full one (ms)',
    expected: 'an integer number of milliseconds from 1 to 1000',
    schema: int(1, 1000),
    default: 5
  }),
  'session-store-prefix': spec({
    description: 'key prefix naming this farm in the shared store (farms sharing one server need different prefixes)',
    expected: '1 to 64 characters [A-Za-z0-9:._-]',
    valueName: 'PREFIX',
    schema: z.string().regex(/^[A-Za-z0-9:._-]{1,64}$/, 'only letters, digits and :._-, 1 to 64 of them'),
    default: 'tlsfleet:'
  }),
  'session-store-ca': spec({
    description: 'with rediss://: PEM file of the CA(s) the store\'s server certificate must chain to (instead of Node\'s public CA list: a private CA)',
    expected: 'a file path',
    valueName: 'FILE',
    schema: z.string(),
    default: '',
    defaultHelp: 'Node\'s public CA list'
  }),
  'session-store-cert': spec({
    description: 'with rediss://: PEM file with this node\'s client certificate and its key, for a store that asks for one (Redis\'s tls-auth-clients yes, its default with TLS)',
    expected: 'a file path',
    valueName: 'FILE',
    schema: z.string(),
    default: ''
  }),
  'admin-listen': spec({
    description: 'address of the admin HTTP API (health, state, metrics)',
    expected: 'HOST:PORT',
    valueName: 'HOST:PORT',
    schema: hostPort,
    default: () => ({ host: '127.0.0.1', port: 8445 })
  }),
  'admin-token-file': spec({
    description: 'file holding the admin API bearer token (>= 16 characters, mode 0600), then needed for every route but /health; required when --admin-listen is not a loopback address',
    expected: 'a file path',
    valueName: 'FILE',
    schema: z.string(),
    default: '',
    defaultHelp: 'a token generated into --state-dir/admin.token, needed for state changes only'
  }),
  'admin-allow-unauthenticated': spec({
    description: 'let anyone who reaches the admin API change the node\'s state without a token (only for a loopback API on a single-user machine)',
    expected: 'one of on, off',
    schema: z.enum(['on', 'off']),
    default: 'off' as const
  }),
  'admin-allow-host': spec({
    description: 'a host name admin API requests may name in their Host header besides IP addresses and localhost (repeatable; against DNS rebinding)',
    expected: 'a host name',
    valueName: 'NAME',
    schema: z.array(z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'a DNS name').transform((name) => name.toLowerCase().replace(/\.$/, ''))),
    multiple: true,
    default: () => [] as string[]
  }),
  'agent-listen': spec({
    description: 'address of the HAProxy agent-check responder (point agent-port/agent-addr here), or off',
    expected: 'HOST:PORT or "off"',
    valueName: 'HOST:PORT',
    schema: parsedBy(parseHostPort, 'off'),
    default: 'off' as const
  }),
  'initial-state': spec({
    description: 'administrative state at start: ready, drain or maint (the state is not kept across restarts)',
    expected: 'one of ready, drain, maint',
    schema: z.enum(['ready', 'drain', 'maint']),
    default: 'ready' as const
  }),
  maxconn: spec({
    description: 'per-server connection limit the agent sends to HAProxy (maxconn:N); 0 = none, or with --max-connections a value just below it',
    expected: 'an integer from 0 to 1000000',
    schema: int(0, 1_000_000),
    default: 0
  }),
  'max-handshake-rate': spec({
    description: 'handshakes per second at which the node counts as full when computing the agent weight; 0 = event loop load only',
    expected: 'an integer from 0 to 10000000',
    schema: int(0, 10_000_000),
    default: 0
  }),
  'backend-check-interval': spec({
    description: 'seconds between TCP connect probes of the backend (two failures in a row make the agent say down); 0 = no probe',
    expected: 'a number of seconds from 0 to 3600',
    schema: seconds(0, 3600),
    default: 2
  }),
  'haproxy-socket': spec({
    description: 'HAProxy Runtime API (stats socket, level admin): a unix socket path or HOST:PORT, or off',
    expected: 'a socket path, HOST:PORT, or "off"',
    valueName: 'PATH|HOST:PORT',
    schema: z.string().min(1).refine((s) => s === 'off' || isRuntimeApiTarget(s), 'neither a path (with a "/") nor HOST:PORT'),
    default: 'off'
  }),
  'haproxy-server': spec({
    description: 'this node\'s entry in HAProxy, BACKEND/SERVER (needed with --haproxy-socket)',
    expected: 'BACKEND/SERVER, names of letters, digits and -_.:',
    valueName: 'BACKEND/SERVER',
    schema: z.string().regex(/^$|^[A-Za-z0-9_.:-]+\/[A-Za-z0-9_.:-]+$/, 'expected BACKEND/SERVER'),
    default: ''
  }),
  'haproxy-table': spec({
    description: 'HAProxy stick table holding the persistence entries',
    expected: 'a table name of letters, digits and -_.:',
    valueName: 'TABLE',
    schema: z.string().regex(/^[A-Za-z0-9_.:-]*$/, 'letters, digits and -_.: only'),
    default: '',
    defaultHelp: 'the backend of --haproxy-server'
  }),
  terminator: spec({
    description: 'who terminates TLS on this node: tlsfleet (its workers) or haproxy (a local HAProxy; tlsfleet then keeps its ticket keys, agent, admin API and sync, and starts no worker)',
    expected: 'one of tlsfleet, haproxy',
    schema: z.enum(['tlsfleet', 'haproxy']),
    default: 'tlsfleet' as const
  }),
  'terminator-socket': spec({
    description: 'with --terminator haproxy: the local HAProxy\'s Runtime API (stats socket, level admin), a unix socket path or HOST:PORT',
    expected: 'a socket path or HOST:PORT',
    valueName: 'PATH|HOST:PORT',
    schema: z.string().refine((s) => s === '' || isRuntimeApiTarget(s), 'neither a path (with a "/") nor HOST:PORT'),
    default: ''
  }),
  'terminator-keys': spec({
    description: 'with --terminator haproxy: the tls-ticket-keys file of the local HAProxy\'s bind line, as written there; tlsfleet keeps its key ring current',
    expected: 'a file path without whitespace or ";"',
    valueName: 'KEYFILE',
    schema: runtimeApiWord,
    default: ''
  }),
  'terminator-frontend': spec({
    description: 'with --terminator haproxy: a frontend of the local HAProxy that must be open for the node to be up (repeatable)',
    expected: 'a frontend name of letters, digits and -_.:',
    valueName: 'NAME',
    schema: z.array(z.string().regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and -_.: only')),
    multiple: true,
    default: () => [] as string[],
    defaultHelp: 'every frontend of the local HAProxy'
  }),
  'log-level': spec({
    description: 'log level: fatal, error, warn, info, debug, trace',
    expected: 'one of fatal, error, warn, info, debug, trace, silent',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    default: 'info' as const
  }),
  'log-format': spec({
    description: 'log format: json, pretty, or auto (pretty when stdout is a terminal)',
    expected: 'one of json, pretty, auto',
    schema: z.enum(['json', 'pretty', 'auto']),
    default: 'auto' as const
  })
} as const

export type OptionKey = keyof typeof OPTIONS
export const OPTION_KEYS = Object.keys(OPTIONS) as OptionKey[]

type CamelCase<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S
type ValueOf<K extends OptionKey> = (typeof OPTIONS)[K] extends OptionSpec<infer T> ? T : never

/** The validated configuration of a node, with camelCase keys. */
export type NodeConfig = { [K in OptionKey as CamelCase<K>]: ValueOf<K> }

export function camelCase (key: string): string {
  return key.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase())
}

/** `session-timeout` → `TLSFLEET_SESSION_TIMEOUT`. */
export function envName (key: string): string {
  return 'TLSFLEET_' + key.toUpperCase().replace(/-/g, '_')
}

export function optionSpec (key: OptionKey): OptionSpec<unknown> {
  return OPTIONS[key] as OptionSpec<unknown>
}

/** An option's default as `--help` shows it: "none" for an empty one, addresses as HOST:PORT. */
export function defaultForHelp (key: OptionKey): string {
  const spec = optionSpec(key)
  if (spec.defaultHelp !== undefined) return spec.defaultHelp
  const value = typeof spec.default === 'function' ? (spec.default as () => unknown)() : spec.default
  const items = Array.isArray(value) ? value : [value]
  const shown = items.map((item) => typeof item === 'object' && item !== null ? formatHostPort(item as HostPort) : String(item)).filter((text) => text !== '')
  return shown.length === 0 ? 'none' : shown.join(', ')
}
