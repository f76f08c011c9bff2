import { Command } from 'commander'
import { certificateAttention, type CertificateAttention } from '../admin/certificate-attention.js'
import type { CacheBody, CertificateBody, CertificatesBody, PeersBody, StateBody } from '../admin/schemas.js'
import { CACHE_ANSWER, CERTIFICATES_ANSWER, PEERS_ANSWER, STATE_ANSWER } from './admin-answers.js'
import { AdminClient, DEFAULT_ADMIN_URL, type AdminClientOptions } from './admin-client.js'

/** Options every admin CLI command takes. */
export function addAdminOptions (command: Command): Command {
  return command
    .option('--admin <URL>', `the node's admin API (default ${DEFAULT_ADMIN_URL}) [env TLSFLEET_ADMIN_URL]`)
    .option('--token-file <FILE>', 'file with the node\'s admin bearer token [env TLSFLEET_ADMIN_TOKEN_FILE]')
    .option('--state-dir <DIR>', 'without --token-file: the node\'s --state-dir, where it generated admin.token (default .tlsfleet) [env TLSFLEET_STATE_DIR]')
    .option('--timeout <SECONDS>', 'how long to wait for the node (default 5)')
}

function bytes (n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

function ago (iso: string | undefined, now: number): string {
  if (iso === undefined) return 'never'
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000))
  return `${seconds}s ago`
}

function percent (ratio: number | undefined): string {
  return ratio === undefined ? '-' : `${Math.round(ratio * 100)}%`
}

/** A local HAProxy terminating TLS: its state, its figures, its ticket key ring. */
function terminatorRows (t: NonNullable<StateBody['terminator']>): Array<[string, string]> {
  const rows: Array<[string, string]> = []
  const who = `haproxy via ${t.socket ?? '?'}${t.pid !== undefined ? ` (pid ${t.pid}${t.version !== undefined ? `, ${t.version}` : ''})` : ''}`
  rows.push(['terminator', `${who}: ${t.serving ? 'serving' : `not serving (${t.reason ?? '?'})`}`])
  if (t.frontends !== undefined && t.frontends.length > 0) rows.push(['', `frontends ${t.frontends.map((f) => `${f.name} ${f.status}`).join(', ')}`])
  if (t.idlePercent !== undefined) {
    rows.push(['', `idle ${t.idlePercent}%, connections ${t.connections ?? 0}/${t.maxConnections ?? '?'}, TLS ${t.sslRate ?? 0}/s (full ${t.sslKeyRate ?? 0}/s), reuse ${t.sessionReusePercent ?? 0}%, session cache ${t.cacheLookups ?? 0} lookups ${t.cacheMisses ?? 0} misses`])
  }
  const k = t.ticketKeys
  if (k !== undefined) {
    // Not read (HAProxy does not answer, or is not set up) is not the same as read and wrong.
    const ring = k.known === false ? 'ring unknown (not read from the local haproxy)' : k.current ? `the farm's ring (epoch ${k.epoch ?? '?'})` : 'NOT the farm\'s ring'
    rows.push(['ticket keys', `${t.keyFile ?? '?'}: ${ring}, ${k.rotations} rotations, ${k.repairs} repairs${k.lastPushAt !== undefined ? `, last push ${k.lastPushAt}` : ''}`])
  }
  for (const warning of t.warnings ?? []) rows.push(['', `warning: ${warning}`])
  return rows
}

/** The node's `attention` for `c`; a node older than that field sends none: the same rule, applied here. */
function attentionOf (c: CertificateBody): readonly CertificateAttention[] {
  return (c as Partial<CertificateBody>).attention ?? certificateAttention(c.expiresInDays, c.ocsp)
}

/**
 * The certificates served: how many, the next to expire, and each one that needs the operator
 * (its `attention`, decided by the node: expiring soon, expired, no staple, revoked).
 */
export function certificateRows (body: CertificatesBody | Error): Array<[string, string]> {
  if (body instanceof Error) return [['certificates', `unknown (${body.message})`]]
  if (body.note !== undefined) return [['certificates', body.note]]
  const rows: Array<[string, string]> = []
  const soonest = [...body.certificates].sort((a, b) => a.expiresInDays - b.expiresInDays)[0]
  const name = (c: CertificatesBody['certificates'][number]): string => `${c.names[0] ?? c.file} (${c.file})`
  const days = (n: number): string => n < 0 ? `EXPIRED ${-n} day(s) ago` : `expires in ${n} day(s)`
  rows.push(['certificates', `${body.certificates.length} served${soonest !== undefined ? `, next to expire ${name(soonest)} on ${soonest.notAfter.slice(0, 10)}` : ''}`])
  for (const c of body.certificates) {
    const attention = attentionOf(c)
    if (attention.includes('expired') || attention.includes('expiring')) rows.push(['', `warning: ${name(c)} ${days(c.expiresInDays)}`])
  }
  if (body.ocspStapling) {
    const stapled = body.certificates.filter((c) => c.ocsp?.status !== 'none').length
    rows.push(['OCSP', `${stapled} of ${body.certificates.length} stapled`])
    for (const c of body.certificates) {
      const attention = attentionOf(c)
      if (attention.includes('revoked')) rows.push(['', `warning: ${name(c)} is REVOKED (its responder says so; replace it)`])
      else if (attention.includes('unstapled')) rows.push(['', `${name(c)}: no staple (${c.ocsp?.reason ?? '?'})`])
    }
  }
  return rows
}

/**
 * The shared store: where, connected or not, and its breakers. Not connected gets a warning line
 * (the node still serves: only resumption across nodes through the store is lost). A node older
 * than the `connected` field shows no such line.
 */
export function storeRows (store: CacheBody['store']): Array<[string, string]> {
  if (store === undefined) return [['session store', 'off']]
  const connected = (store as Partial<typeof store>).connected
  const rows: Array<[string, string]> = [['session store', `${store.target}${connected === undefined ? '' : connected ? ': connected' : ': NOT connected'}, lookups ${store.lookups}, writes ${store.writes}${(store as Partial<typeof store>).deletes !== undefined ? `, deletes ${store.deletes}` : ''}`]]
  if (connected === false) rows.push(['', 'warning: the session store is not connected: sessions made on other nodes resume here only through the sync or tickets (the node serves; see its log for why)'])
  return rows
}

/** Render the admin answers as a two-column table an operator reads at a glance. */
export function formatStatus (views: { state: StateBody; cache: CacheBody; peers: PeersBody; certificates: CertificatesBody | Error }, admin: string, now = Date.now()): string {
  const { state, cache, peers } = views
  const rows: Array<[string, string]> = []
  rows.push(['node', `${state.node} (${admin})`])
  rows.push(['state', `${state.state}${state.changedAt !== undefined ? ` (since ${state.changedAt})` : ''}`])
  rows.push(['health', `${state.health}${state.reason !== undefined ? ` (${state.reason})` : ''}`])
  rows.push(['agent reply', JSON.stringify(state.agentReply)])
  rows.push(['weight', `${state.weightPercent}%  (spare capacity ${percent(state.spareCapacity)}, event loop ${percent(state.eventLoopUtilization)})`])
  if (state.maxconn !== undefined) rows.push(['maxconn', String(state.maxconn)])
  const t = state.terminator
  if (t?.kind === 'haproxy') rows.push(...terminatorRows(t))
  else {
    rows.push(['workers', `${state.workers.listening}/${state.workers.configured} listening`])
    const restarts = state.workers.restarts
    if (restarts?.crashLoop === true) rows.push(['', `warning: CRASH LOOP: ${restarts.recent} worker restart(s) in the last ${restarts.windowSeconds} s, ${restarts.nextRestartInMs !== undefined ? `next in ${(restarts.nextRestartInMs / 1000).toFixed(1)} s` : `replacements wait ${(restarts.delayMs / 1000).toFixed(1)} s`} (the node's log says why they die)`])
  }
  rows.push(...certificateRows(views.certificates))
  rows.push(['connections', String(state.connections)])
  rows.push(['handshakes', `full ${state.handshakes.full}, resumed ${state.handshakes.resumed} (${state.handshakes.perSecond.toFixed(1)}/s)`])
  rows.push(['L2 cache', `${cache.l2.entries} entries, ${bytes(cache.l2.bytes)}, hits ${cache.l2.hits}, misses ${cache.l2.misses}`])
  cache.l1.forEach((w, i) => {
    rows.push([i === 0 ? 'L1 caches' : '', `${w.pid !== undefined ? `pid ${w.pid}: ` : ''}${w.entries} entries, ${bytes(w.bytes)}, hits ${w.hits}, misses ${w.misses}`])
  })
  rows.push(...storeRows(cache.store))
  rows.push(['sync', peers.sync === 'off' ? 'off' : `${peers.sync}, ${peers.peers.length} peer(s)`])
  for (const p of peers.peers) {
    const rejected = Object.entries(p.rejected).filter(([, n]) => (n ?? 0) > 0).map(([reason, n]) => `${reason} ${n ?? 0}`).join(', ')
    rows.push(['', `${p.addresses !== undefined ? p.addresses.join(', ') : p.address}${p.nodeId !== undefined ? ` (${p.nodeId})` : ''}: seen ${ago(p.lastSeen, now)}, in ${p.packetsIn}, out ${p.packetsOut}, rejected ${rejected === '' ? '0' : rejected}`])
  }
  const h = state.haproxy
  if (h === undefined) rows.push(['haproxy', 'no --haproxy-socket configured'])
  else if (!h.reachable) rows.push(['haproxy', `${h.backend}/${h.server} via ${h.socket}: ${h.error ?? 'unreachable'}`])
  else {
    rows.push(['haproxy', `${h.backend}/${h.server} via ${h.socket}: ${h.status ?? '?'}, weight ${h.weight ?? '?'}, sessions ${h.currentSessions ?? 0}`])
    rows.push(['', `check ${h.checkStatus ?? '-'}, agent ${h.agentStatus ?? '-'}${h.lastAgent !== undefined ? ` (${h.lastAgent})` : ''}${h.adminFlags !== undefined && h.adminFlags.length > 0 ? `, flags ${h.adminFlags.join(',')}` : ''}`])
    if (h.error !== undefined) rows.push(['', `warning: ${h.error}`])
  }
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n'
}

/** `tlsfleet status`: one node's state, load, caches, peers and HAProxy's view of it. */
export function statusCommand (): Command {
  const command = new Command('status').description('show a node\'s state, health, load, certificates, caches, sync peers and what HAProxy thinks of it')
  addAdminOptions(command).option('--json', 'print the raw JSON answers instead of a table')
  command.action(async (opts: AdminClientOptions & { json?: boolean }) => {
    const client = new AdminClient(opts)
    const [state, cache, peers, certificates] = await Promise.all([
      client.get<StateBody>('/v1/state', STATE_ANSWER),
      client.get<CacheBody>('/v1/cache', CACHE_ANSWER),
      client.get<PeersBody>('/v1/peers', PEERS_ANSWER),
      // A node of an older version has no such route: the rest of the status still shows.
      client.get<CertificatesBody>('/v1/certificates', CERTIFICATES_ANSWER).catch((err: unknown) => err instanceof Error ? err : new Error(String(err)))
    ])
    if (opts.json === true) process.stdout.write(JSON.stringify({ state, cache, peers, certificates: certificates instanceof Error ? { error: certificates.message } : certificates }, null, 2) + '\n')
    else process.stdout.write(formatStatus({ state, cache, peers, certificates }, client.base))
  })
  return command
}
