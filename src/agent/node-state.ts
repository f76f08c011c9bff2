import { EventEmitter } from 'node:events'
import type { AdminState, AgentReply } from './agent-reply.js'
import { CapacityEstimator, type CapacitySample } from './capacity.js'

export type { AdminState } from './agent-reply.js'

export function isAdminState (value: unknown): value is AdminState {
  return value === 'ready' || value === 'drain' || value === 'maint'
}

/** What the node's health depends on; the primary feeds these in. */
/** Whether the node's TLS terminator can serve, and if not why (its own words). */
export interface TerminatorInput { serving: boolean; reason?: string }

export interface HealthInputs {
  /** Workers listening, or the local HAProxy ready (src/node/terminator-part.ts). */
  terminator: TerminatorInput
  /** False until the warm join (session snapshot from peers) is over. */
  warm: boolean
  /** The node is shutting down. */
  stopping: boolean
  /** Result of the backend probe; undefined when the probe is off or has not run yet. */
  backendReachable?: boolean
}

export interface HealthVerdict { health: 'up' | 'down'; reason?: string }

/** The first reason that makes a node unhealthy, in order of what an operator must fix first. */
export function judgeHealth (inputs: HealthInputs): HealthVerdict {
  if (inputs.stopping) return { health: 'down', reason: 'stopping' }
  if (!inputs.warm) return { health: 'down', reason: 'warming up (waiting for a session snapshot from peers)' }
  if (!inputs.terminator.serving) return { health: 'down', reason: inputs.terminator.reason ?? 'the TLS terminator does not serve' }
  if (inputs.backendReachable === false) return { health: 'down', reason: 'backend unreachable' }
  return { health: 'up' }
}

export interface NodeStateOptions {
  initial?: AdminState
  /** maxconn sent to HAProxy; 0 or undefined = none sent. */
  maxconn?: number
  /** Handshakes/s at which the node counts as full; 0 = event loop only. */
  maxHandshakesPerSecond?: number
  capacity?: CapacityEstimator
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

  constructor (opts: NodeStateOptions = {}) {
    super()
    this.adminState = opts.initial ?? 'ready'
    this.capacity = opts.capacity ?? new CapacityEstimator()
    this.maxconn = opts.maxconn ?? 0
    this.maxHandshakes = opts.maxHandshakesPerSecond ?? 0
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

  /** A load sample from the workers (event loop utilization 0..1, handshakes per second). */
  updateLoad (sample: Omit<CapacitySample, 'maxHandshakesPerSecond'>): void {
    this.capacity.update({ ...sample, ...(this.maxHandshakes > 0 ? { maxHandshakesPerSecond: this.maxHandshakes } : {}) })
  }

  health (): HealthVerdict { return judgeHealth(this.inputs) }

  snapshot (): NodeStateSnapshot {
    const verdict = this.health()
    const spare = this.capacity.spareCapacity()
    return {
      admin: this.adminState,
      health: verdict.health,
      ...(verdict.reason !== undefined ? { reason: verdict.reason } : {}),
      effective: verdict.health === 'down' ? 'down' : this.adminState,
      weightPercent: this.capacity.weightPercent(),
      ...(spare !== undefined ? { spareCapacity: spare } : {}),
      ...(this.maxconn > 0 ? { maxconn: this.maxconn } : {}),
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
    return {
      admin,
      health: verdict.health,
      weightPercent: this.capacity.weightPercent(),
      ...(this.maxconn > 0 ? { maxconn: this.maxconn } : {}),
      ...(verdict.reason !== undefined ? { reason: verdict.reason } : {})
    }
  }
}
