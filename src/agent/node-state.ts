import { EventEmitter } from 'node:events'
import type { AdminState, AgentReply } from './agent-reply.js'
import { CapacityEstimator, type CapacitySample } from './capacity.js'

export type { AdminState } from './agent-reply.js'

export function isAdminState (value: unknown): value is AdminState {
  return value === 'ready' || value === 'drain' || value === 'maint'
}

/** What the node's health depends on; the primary feeds these in. */
/** Whether the node's TLS terminator can serve, and if not why (its own words; short ones for the agent). */
export interface TerminatorInput {
  serving: boolean
  reason?: string
  agentReason?: string
  /** 0..1: the share of the configured workers that serve; the weight is scaled by it (absent = all). */
  servingShare?: number
}

export interface HealthInputs {
  /**
   * Workers listening, or the local HAProxy ready (src/node/terminator-part.ts). A function is
   * read at each use: a reason that follows time (the workers' crash loop ends with no event to
   * push a new one) is never read stale.
   */
  terminator: TerminatorInput | (() => TerminatorInput)
  /** False until the warm join (session snapshot from peers) is over. */
  warm: boolean
  /** The node is shutting down. */
  stopping: boolean
  /** Result of the backend probe; undefined when the probe is off or has not run yet. */
  backendReachable?: boolean
}

/** `agentReason`: the reason in a few words, for the agent line, when `reason` is long. */
export interface HealthVerdict { health: 'up' | 'down'; reason?: string; agentReason?: string }

/** The terminator's health as of now. */
function terminatorNow (inputs: HealthInputs): TerminatorInput {
  return typeof inputs.terminator === 'function' ? inputs.terminator() : inputs.terminator
}

/** The first reason that makes a node unhealthy, in order of what an operator must fix first. */
export function judgeHealth (inputs: HealthInputs): HealthVerdict {
  if (inputs.stopping) return { health: 'down', reason: 'stopping' }
  if (!inputs.warm) return { health: 'down', reason: 'warming up (waiting for a session snapshot from peers)' }
  const terminator = terminatorNow(inputs)
  if (!terminator.serving) {
    const { reason, agentReason } = terminator
    return { health: 'down', reason: reason ?? 'the TLS terminator does not serve', ...(agentReason !== undefined ? { agentReason } : {}) }
  }
  if (inputs.backendReachable === false) return { health: 'down', reason: 'backend unreachable' }
  return { health: 'up' }
}

export interface NodeStateOptions {
  initial?: AdminState
  /** maxconn sent to HAProxy; 0 or undefined = none sent. */
  maxconn?: number
  /** Handshakes/s at which the node counts as full; 0 = event loop only. */
  maxHandshakesPerSecond?: number
  /**
   * --max-connections: the agent sends HAProxy the node's connection limit (less a reserve, see
   * haproxyMaxconn) as maxconn, starting from this value and following what the workers report.
   * 0 or undefined = not sent (unless `maxconn` is).
   */
  connectionLimit?: number
  capacity?: CapacityEstimator
}

/** Share of the node's connection limit the agent keeps out of HAProxy's maxconn. */
export const MAXCONN_RESERVE = 0.05

/**
 * The maxconn the agent sends for a node admitting `limit` connections: a few percent less, so
 * HAProxy queues its surplus instead of sending it to be refused. The reserve covers what
 * HAProxy's maxconn does not count (its health checks, direct clients, a second balancer's
 * checks) and a worker filling before the others (the kernel picks the worker by hash). Never
 * 0, which HAProxy reads as "no limit".
 */
export function haproxyMaxconn (limit: number): number {
  return Math.max(1, limit - Math.ceil(limit * MAXCONN_RESERVE))
}

export interface NodeStateSnapshot {
  /** Administrative state set by the operator. */
  admin: AdminState
  health: 'up' | 'down'
  reason?: string
  /** What the agent reports: `down` when unhealthy, else the admin state. */
  effective: AdminState | 'down'
  weightPercent: number
  /** Smoothed spare capacity 0..1, undefined before the first load sample. */
  spareCapacity?: number
  maxconn?: number
  /** Admin state changes: when the last one happened (ISO time), undefined before any. */
  changedAt?: string
}

/**
 * A node's state as HAProxy and operators see it: the administrative state (ready, drain,
 * maint) the operator chose, the health computed from the node's processes, and the weight
 * from the capacity estimator. Pure bookkeeping, no I/O, so the agent answers from it at once.
 * Emits `change` (new admin state, previous) when the admin state changes.
 */
export class NodeState extends EventEmitter<{ change: [state: AdminState, previous: AdminState] }> {
  private adminState: AdminState
  private changedAt: Date | undefined
  private inputs: HealthInputs = { terminator: { serving: false, reason: 'no live worker' }, warm: false, stopping: false }
  private readonly capacity: CapacityEstimator
  private readonly maxconn: number
  private readonly maxHandshakes: number
  private readonly advertiseLimit: boolean
  private connectionLimit: number | undefined

  constructor (opts: NodeStateOptions = {}) {
    super()
    this.adminState = opts.initial ?? 'ready'
    this.capacity = opts.capacity ?? new CapacityEstimator()
    this.maxconn = opts.maxconn ?? 0
    this.maxHandshakes = opts.maxHandshakesPerSecond ?? 0
    this.advertiseLimit = (opts.connectionLimit ?? 0) > 0
    this.connectionLimit = this.advertiseLimit ? opts.connectionLimit : undefined
  }

  get admin (): AdminState { return this.adminState }

  /** Change the admin state; returns false (and emits nothing) when it already was that. */
  setAdmin (state: AdminState, now = new Date()): boolean {
    if (!isAdminState(state)) throw new Error(`invalid state ${JSON.stringify(state)}: expected ready, drain or maint`)
    if (state === this.adminState) return false
    const previous = this.adminState
    this.adminState = state
    this.changedAt = now
    this.emit('change', state, previous)
    return true
  }

  /** Replace some of the health inputs (the others keep their value). */
  updateHealth (inputs: Partial<HealthInputs>): void {
    this.inputs = { ...this.inputs, ...inputs }
  }

  /**
   * A load sample from the workers (event loop utilization 0..1, handshakes per second, how full
   * they are of connections, and how many they admit: the limit falls with a lowered
   * file-descriptor limit, and the maxconn sent follows).
   */
  updateLoad (sample: Omit<CapacitySample, 'maxHandshakesPerSecond'> & { connectionLimit?: number }): void {
    const { connectionLimit, ...load } = sample
    if (this.advertiseLimit && connectionLimit !== undefined && connectionLimit > 0) this.connectionLimit = connectionLimit
    this.capacity.update({ ...load, ...(this.maxHandshakes > 0 ? { maxHandshakesPerSecond: this.maxHandshakes } : {}) })
  }

  /** maxconn for HAProxy: --maxconn when given, else the node's connection limit less the reserve (with --max-connections). */
  private maxconnToSend (): number | undefined {
    if (this.maxconn > 0) return this.maxconn
    return this.connectionLimit !== undefined ? haproxyMaxconn(this.connectionLimit) : undefined
  }

  health (): HealthVerdict { return judgeHealth(this.inputs) }

  /** The load's weight, scaled by the share of the workers that serve (a lost worker is lost capacity). */
  private weightPercent (): number {
    return this.capacity.weightPercent(terminatorNow(this.inputs).servingShare ?? 1)
  }

  snapshot (): NodeStateSnapshot {
    const verdict = this.health()
    const spare = this.capacity.spareCapacity()
    const maxconn = this.maxconnToSend()
    return {
      admin: this.adminState,
      health: verdict.health,
      ...(verdict.reason !== undefined ? { reason: verdict.reason } : {}),
      effective: verdict.health === 'down' ? 'down' : this.adminState,
      weightPercent: this.weightPercent(),
      ...(spare !== undefined ? { spareCapacity: spare } : {}),
      ...(maxconn !== undefined ? { maxconn } : {}),
      ...(this.changedAt !== undefined ? { changedAt: this.changedAt.toISOString() } : {})
    }
  }

  /**
   * The agent reply for this instant. While stopping the node also says `drain`, so HAProxy
   * sends it no new client even before the health word takes it out.
   */
  agentReply (): AgentReply {
    const verdict = this.health()
    const admin: AdminState = this.inputs.stopping && this.adminState === 'ready' ? 'drain' : this.adminState
    const maxconn = this.maxconnToSend()
    return {
      admin,
      health: verdict.health,
      weightPercent: this.weightPercent(),
      ...(maxconn !== undefined ? { maxconn } : {}),
      ...(verdict.reason !== undefined ? { reason: verdict.agentReason ?? verdict.reason } : {})
    }
  }
}
