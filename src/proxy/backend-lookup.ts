import dns, { type LookupAddress } from 'node:dns'
import net from 'node:net'

/** How long a failed lookup keeps the last addresses in use before the next try. */
const RETRY_MS = 1000

type LookupAll = (hostname: string) => Promise<LookupAddress[]>

/** What net.connect calls to turn the backend's name into addresses (its `lookup` option). */
export type ConnectLookup = NonNullable<net.TcpNetConnectOpts['lookup']>

export interface BackendLookupOptions {
  /** --backend-refresh in ms: how long looked-up addresses are used before the name is looked up again. */
  refreshMs: number
  /** Told when the addresses change (not the first time), and when a lookup fails while old ones stay in use (once per run of failures). */
  onChange?: (addresses: string[], previous: string[]) => void
  onStaleError?: (err: Error) => void
  /** Tests: another resolver, another clock. */
  lookupAll?: LookupAll
  now?: () => number
}

const systemLookupAll: LookupAll = async (hostname) => await dns.promises.lookup(hostname, { all: true })

/**
 * The backend's name looked up once per --backend-refresh, not once per connection: net.connect
 * asks getaddrinfo (on libuv's four-thread pool) for every connection to a name, so a slow
 * resolver (Docker's embedded DNS, a remote one) would pace the node's handshakes, and a
 * resolver outage would fail every new connection. Stale while revalidating: a connection
 * never waits for a refresh when addresses are known, and a failed refresh keeps the last ones
 * (hitch's backend-refresh and HAProxy's resolvers do the same). All addresses are handed to
 * net.connect, which tries them in turn (Node's autoSelectFamily, "happy eyeballs").
 */
export class BackendLookup {
  private addresses: LookupAddress[] = []
  private freshUntil = 0
  private refreshing?: Promise<void>
  private failing = false
  private readonly lookupAll: LookupAll
  private readonly now: () => number

  constructor (private readonly hostname: string, private readonly opts: BackendLookupOptions) {
    this.lookupAll = opts.lookupAll ?? systemLookupAll
    this.now = opts.now ?? Date.now
  }

  /** For net.connect's `lookup` option. */
  readonly lookup: ConnectLookup = (hostname, options, callback) => {
    const answer = (err: Error | null, list: LookupAddress[]): void => {
      const wanted = options.family === 4 || options.family === 6 ? list.filter((a) => a.family === options.family) : list
      if (err === null && wanted.length === 0) err = Object.assign(new Error(`${hostname}: no IPv${String(options.family)} address`), { code: 'ENOTFOUND' })
      // Always after the caller's turn, as dns.lookup answers.
      process.nextTick(() => {
        if (err !== null) callback(err as NodeJS.ErrnoException, '', 0)
        else if (options.all === true) (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, wanted)
        else callback(null, (wanted[0] as LookupAddress).address, (wanted[0] as LookupAddress).family)
      })
    }
    if (hostname !== this.hostname) {
      // Never expected (one target per worker): ask the system as net.connect would.
      dns.lookup(hostname, { all: true }, (err, list) => answer(err, list ?? []))
      return
    }
    if (this.addresses.length > 0) {
      if (this.now() >= this.freshUntil) void this.refresh()
      answer(null, this.addresses)
      return
    }
    this.refresh().then(() => answer(null, this.addresses), (err: Error) => answer(err, []))
  }

  /** The addresses in use (tests, logs). */
  current (): string[] {
    return this.addresses.map((a) => a.address)
  }

  /** One lookup at a time; it rejects with the resolver's error only when no address is known. */
  private async refresh (): Promise<void> {
    this.refreshing ??= this.lookupOnce().finally(() => { this.refreshing = undefined })
    await this.refreshing
  }

  private async lookupOnce (): Promise<void> {
    let list: LookupAddress[]
    try {
      list = await this.lookupAll(this.hostname)
      if (list.length === 0) throw Object.assign(new Error(`${this.hostname}: the name did not resolve`), { code: 'ENOTFOUND' })
    } catch (err) {
      this.freshUntil = this.now() + Math.min(RETRY_MS, Math.max(this.opts.refreshMs, 1))
      if (this.addresses.length === 0) throw err
      if (!this.failing) this.opts.onStaleError?.(err as Error)
      this.failing = true
      return
    }
    const previous = this.current()
    this.addresses = list
    this.freshUntil = this.now() + this.opts.refreshMs
    this.failing = false
    const next = this.current()
    if (previous.length > 0 && previous.join(',') !== next.join(',')) this.opts.onChange?.(next, previous)
  }
}

/**
 * The `lookup` option for connections to `host`: undefined for an IP address (nothing to look
 * up) or with a refresh of 0 (look up on every connection, as net.connect does by itself).
 */
export function backendLookupFor (host: string, opts: BackendLookupOptions): BackendLookup | undefined {
  if (net.isIP(host) !== 0 || opts.refreshMs <= 0) return undefined
  return new BackendLookup(host, opts)
}
