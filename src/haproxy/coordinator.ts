import type { AdminState } from '../agent/agent-reply.js'
import { HaproxyRuntimeError } from '../errors.js'
import { HaproxyRuntimeApi } from './runtime-api.js'
import type { StatRow } from './stats.js'

/** One Runtime API command we sent and how it went. */
export interface CommandOutcome {
  command: string
  ok: boolean
  error?: string
}

/** What HAProxy thinks of this node (its `show stat` and `show servers state` rows). */
export interface HaproxyView {
  socket: string
  backend: string
  server: string
  /** False when the socket did not answer or the server was not found; see `error`. */
  reachable: boolean
  error?: string
  /** `UP`, `DOWN`, `DRAIN`, `MAINT`, `DOWN (agent)`, ... */
  status?: string
  weight?: number
  serverId?: number
  currentSessions?: number
  checkStatus?: string
  agentStatus?: string
  /** The agent's last reply as HAProxy recorded it (`last_agt`). */
  lastAgent?: string
  /** Admin flags from `show servers state` (FMAINT, FDRAIN, ...). */
  adminFlags?: string[]
}

/** What `show stat` says about one server (its status, weight, sessions, checks), as the admin API names it. */
export function serverStatView (row: StatRow): Required<Pick<HaproxyView, 'status'>> & Pick<HaproxyView, 'weight' | 'currentSessions' | 'checkStatus' | 'agentStatus' | 'lastAgent'> {
  return {
    status: row.status,
    ...(row.weight !== undefined ? { weight: row.weight } : {}),
    ...(row.scur !== undefined ? { currentSessions: row.scur } : {}),
    ...(row.check_status !== undefined ? { checkStatus: row.check_status } : {}),
    ...(row.agent_status !== undefined ? { agentStatus: row.agent_status } : {}),
    ...(row.last_agt !== undefined ? { lastAgent: row.last_agt } : {})
  }
}

export interface CoordinatorOptions {
  socket: string
  /** BACKEND/SERVER of this node. */
  server: string
  /** Stick table; default: the backend. */
  table?: string
  timeoutMs?: number
  /**
   * Called for every command, so the caller can log and count it; `err` is the failure itself
   * (a HaproxyRuntimeError when HAProxy refused, with its code and reply), for the log's `err`.
   */
  onCommand?: (outcome: CommandOutcome, err?: Error) => void
}

/** How long one read of HAProxy's view of this server answers /v1/state and the dashboard. */
const VIEW_MAX_AGE_MS = 1000

/**
 * Tells HAProxy about admin state changes at once through the Runtime API, instead of
 * waiting for the next agent poll, and clears this node's persistence entries when its
 * clients must move. Every HAProxy error is returned to the caller (and reported through
 * `onCommand`), never swallowed.
 */
export class HaproxyCoordinator {
  readonly api: HaproxyRuntimeApi
  readonly backend: string
  readonly server: string
  readonly table: string
  /** Changes in the order they were asked: two PUTs at once must leave HAProxy where the node is. */
  private changes: Promise<unknown> = Promise.resolve()
  /** The last view and when it was read: shared by every caller for VIEW_MAX_AGE_MS. */
  private lastView?: { at: number; view: Promise<HaproxyView> }

  constructor (private readonly opts: CoordinatorOptions) {
    const [backend, server, ...rest] = opts.server.split('/')
    if (backend === undefined || backend === '' || server === undefined || server === '' || rest.length > 0) {
      throw new Error(`--haproxy-server ${JSON.stringify(opts.server)}: expected BACKEND/SERVER`)
    }
    this.backend = backend
    this.server = server
    this.table = opts.table !== undefined && opts.table !== '' ? opts.table : backend
    this.api = new HaproxyRuntimeApi(opts.socket, { timeoutMs: opts.timeoutMs ?? 3000 })
  }

  /**
   * Mirror an admin state on HAProxy: `set server B/S state <state>`. With `moveClients`
   * (always for maint) this server's stick-table entries are cleared afterwards, so its
   * persistent clients are balanced to other nodes at their next connection.
   */
  async applyState (state: AdminState, opts: { moveClients?: boolean } = {}): Promise<CommandOutcome[]> {
    return await this.inTurn(async () => {
      const outcomes: CommandOutcome[] = []
      outcomes.push(await this.run(`set server ${this.backend}/${this.server} state ${state}`, async () => {
        await this.api.setServerState(this.backend, this.server, state)
      }))
      if (state === 'maint' || opts.moveClients === true) outcomes.push(...await this.clearOwnEntries())
      return outcomes
    })
  }

  /** `clear table T data.server_id eq ID`, ID being this server's `sid` in `show stat`. */
  async moveClients (): Promise<CommandOutcome[]> {
    return await this.inTurn(async () => await this.clearOwnEntries())
  }

  /**
   * What HAProxy says about this server now (at most VIEW_MAX_AGE_MS old, and read again after
   * a change): every /v1/state poll and open dashboard would otherwise send HAProxy two
   * commands. Never throws: problems land in `error`.
   */
  async view (now = Date.now()): Promise<HaproxyView> {
    const last = this.lastView
    if (last !== undefined && now - last.at < VIEW_MAX_AGE_MS && now >= last.at) return await last.view
    const view = this.readView()
    this.lastView = { at: now, view }
    return await view
  }

  /** Run a change after those asked before it; the view is read afresh after it. */
  private async inTurn<T> (change: () => Promise<T>): Promise<T> {
    const turn = this.changes.then(change)
    this.changes = turn.catch(() => {})
    try {
      return await turn
    } finally {
      this.lastView = undefined
    }
  }

  private async clearOwnEntries (): Promise<CommandOutcome[]> {
    let row: StatRow
    try {
      row = await this.ownRow()
    } catch (err) {
      return [this.failed('show stat', err as Error)]
    }
    const sid = row.sid
    if (sid === undefined) {
      return [this.failed('show stat', new HaproxyRuntimeError('show stat', '', `no server id (sid) for ${this.backend}/${this.server} in show stat`))]
    }
    return [await this.run(`clear table ${this.table} data.server_id eq ${sid}`, async () => {
      await this.api.clearTableByServerId(this.table, sid)
    })]
  }

  private async readView (): Promise<HaproxyView> {
    const base: HaproxyView = { socket: this.api.target, backend: this.backend, server: this.server, reachable: false }
    let row: StatRow
    try {
      row = await this.ownRow()
    } catch (err) {
      return { ...base, error: (err as Error).message }
    }
    const view: HaproxyView = {
      ...base,
      reachable: true,
      ...serverStatView(row),
      ...(row.sid !== undefined ? { serverId: row.sid } : {})
    }
    try {
      const state = (await this.api.showServersState(this.backend)).find((r) => r.srv_name === this.server)
      if (state !== undefined) view.adminFlags = state.admin_flags
    } catch (err) {
      view.error = (err as Error).message
    }
    return view
  }

  private async ownRow (): Promise<StatRow> {
    const rows = await this.api.showStat()
    const row = rows.find((r) => r.pxname === this.backend && r.svname === this.server)
    // HAProxy answered, without this server: its refusal as much as "No such server." is.
    if (row === undefined) throw new HaproxyRuntimeError('show stat', '', `haproxy has no server ${this.backend}/${this.server} (show stat)`)
    return row
  }

  private async run (command: string, action: () => Promise<void>): Promise<CommandOutcome> {
    try {
      await action()
    } catch (err) {
      return this.failed(command, err as Error)
    }
    const outcome = { command, ok: true }
    this.opts.onCommand?.(outcome)
    return outcome
  }

  /** A failed command: its message for the admin API's answer, the error itself for the log. */
  private failed (command: string, err: Error): CommandOutcome {
    const outcome = { command, ok: false, error: err.message }
    this.opts.onCommand?.(outcome, err)
    return outcome
  }
}
