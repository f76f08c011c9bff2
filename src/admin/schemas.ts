/**
 * JSON schemas of the admin API, one per route and status, and the TypeScript shapes they
 * describe. Fastify validates request bodies against them and serializes responses through
 * them (fields a schema does not name are dropped, so nothing leaks by accident).
 */
import type { StoreStatus } from '../store/shared-session-store.js'
import type { AdminState } from '../agent/agent-reply.js'
import type { CommandOutcome, HaproxyView } from '../haproxy/coordinator.js'
import type { WorkerRestarts } from '../node/restart-backoff.js'
import type { TerminatorStatus } from '../node/terminator-part.js'
import type { StapleState } from '../ocsp/ocsp-stapler.js'
import { CERTIFICATE_ATTENTION, type CertificateAttention } from './certificate-attention.js'

export const errorSchema = {
  type: 'object',
  properties: {
    statusCode: { type: 'integer' },
    error: { type: 'string' },
    message: { type: 'string' }
  },
  required: ['statusCode', 'error', 'message']
} as const

export interface ErrorBody { statusCode: number; error: string; message: string }

const stateEnum = ['ready', 'drain', 'maint'] as const

export const healthSchema = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable'] },
    state: { type: 'string', enum: stateEnum },
    health: { type: 'string', enum: ['up', 'down'] },
    reason: { type: 'string' }
  },
  required: ['status', 'state', 'health']
} as const

export interface HealthBody { status: 'ok' | 'unavailable'; state: AdminState; health: 'up' | 'down'; reason?: string }

const commandSchema = {
  type: 'object',
  properties: { command: { type: 'string' }, ok: { type: 'boolean' }, error: { type: 'string' } },
  required: ['command', 'ok']
} as const

const haproxyResultSchema = {
  type: 'object',
  properties: { ok: { type: 'boolean' }, commands: { type: 'array', items: commandSchema } },
  required: ['ok', 'commands']
} as const

export interface HaproxyResult { ok: boolean; commands: CommandOutcome[] }

const haproxyViewSchema = {
  type: 'object',
  properties: {
    socket: { type: 'string' },
    backend: { type: 'string' },
    server: { type: 'string' },
    reachable: { type: 'boolean' },
    error: { type: 'string' },
    status: { type: 'string' },
    weight: { type: 'number' },
    serverId: { type: 'integer' },
    currentSessions: { type: 'integer' },
    checkStatus: { type: 'string' },
    agentStatus: { type: 'string' },
    lastAgent: { type: 'string' },
    adminFlags: { type: 'array', items: { type: 'string' } }
  },
  required: ['socket', 'backend', 'server', 'reachable']
} as const

/** The shared store (--session-store): in /v1/cache with the caches, in /v1/state with the node's other parts. */
const storeStatusSchema = {
  type: 'object',
  properties: {
    target: { type: 'string' },
    connected: { type: 'boolean' },
    lookups: { type: 'string', enum: ['closed', 'open', 'half_open'] },
    writes: { type: 'string', enum: ['closed', 'open', 'half_open'] },
    deletes: { type: 'string', enum: ['closed', 'open', 'half_open'] }
  },
  required: ['target', 'connected', 'lookups', 'writes', 'deletes']
} as const

const terminatorSchema = {
  type: 'object',
  properties: {
    kind: { type: 'string', enum: ['tlsfleet', 'haproxy'] },
    serving: { type: 'boolean' },
    reason: { type: 'string' },
    socket: { type: 'string' },
    keyFile: { type: 'string' },
    reachable: { type: 'boolean' },
    pid: { type: 'integer' },
    version: { type: 'string' },
    frontends: {
      type: 'array',
      items: { type: 'object', properties: { name: { type: 'string' }, status: { type: 'string' } }, required: ['name', 'status'] }
    },
    warnings: { type: 'array', items: { type: 'string' } },
    ticketKeys: {
      type: 'object',
      properties: { known: { type: 'boolean' }, current: { type: 'boolean' }, epoch: { type: 'integer' }, rotations: { type: 'integer' }, repairs: { type: 'integer' }, lastPushAt: { type: 'string' } },
      required: ['current', 'rotations', 'repairs']
    },
    busy: { type: 'number' },
    idlePercent: { type: 'number' },
    connections: { type: 'integer' },
    maxConnections: { type: 'integer' },
    sslRate: { type: 'number' },
    sslKeyRate: { type: 'number' },
    sessionReusePercent: { type: 'number' },
    cacheLookups: { type: 'number' },
    cacheMisses: { type: 'number' }
  },
  required: ['kind', 'serving']
} as const

export const stateSchema = {
  type: 'object',
  properties: {
    node: { type: 'string' },
    state: { type: 'string', enum: stateEnum },
    health: { type: 'string', enum: ['up', 'down'] },
    reason: { type: 'string' },
    effective: { type: 'string', enum: [...stateEnum, 'down'] },
    agentReply: { type: 'string' },
    weightPercent: { type: 'number' },
    spareCapacity: { type: 'number' },
    maxconn: { type: 'integer' },
    changedAt: { type: 'string' },
    workers: {
      type: 'object',
      properties: {
        configured: { type: 'integer' },
        listening: { type: 'integer' },
        restarts: {
          type: 'object',
          properties: {
            recent: { type: 'integer' },
            windowSeconds: { type: 'number' },
            crashLoop: { type: 'boolean' },
            delayMs: { type: 'integer' },
            nextRestartInMs: { type: 'integer' }
          },
          required: ['recent', 'windowSeconds', 'crashLoop', 'delayMs']
        }
      },
      required: ['configured', 'listening']
    },
    connections: { type: 'integer' },
    handshakes: {
      type: 'object',
      properties: { full: { type: 'number' }, resumed: { type: 'number' }, perSecond: { type: 'number' } },
      required: ['full', 'resumed', 'perSecond']
    },
    eventLoopUtilization: { type: 'number' },
    sampledAt: { type: 'string' },
    terminator: terminatorSchema,
    haproxy: haproxyViewSchema,
    store: storeStatusSchema
  },
  required: ['node', 'state', 'health', 'effective', 'agentReply', 'weightPercent', 'workers', 'connections', 'handshakes']
} as const

export interface StateBody {
  node: string
  state: AdminState
  health: 'up' | 'down'
  reason?: string
  effective: AdminState | 'down'
  /** The exact line the agent answers now. */
  agentReply: string
  weightPercent: number
  spareCapacity?: number
  maxconn?: number
  changedAt?: string
  /** `restarts`: deaths lately, the crash loop and the next replacement (nodes with workers of their own). */
  workers: { configured: number; listening: number; restarts?: WorkerRestarts }
  connections: number
  handshakes: { full: number; resumed: number; perSecond: number }
  eventLoopUtilization?: number
  sampledAt?: string
  /** Who terminates TLS on this node, and (a local HAProxy) its state and key ring. */
  terminator?: TerminatorStatus
  haproxy?: HaproxyView
  /** The shared store (--session-store): whether it is connected, and its breakers. Not part of health: the node serves without it. */
  store?: StoreStatus
}

export const putStateBodySchema = {
  type: 'object',
  properties: {
    state: { type: 'string', enum: stateEnum },
    moveClients: { type: 'boolean' }
  },
  required: ['state'],
  additionalProperties: false
} as const

export interface PutStateBody { state: AdminState; moveClients?: boolean }

export const putStateResponseSchema = {
  type: 'object',
  properties: {
    state: { type: 'string', enum: stateEnum },
    previous: { type: 'string', enum: stateEnum },
    changed: { type: 'boolean' },
    haproxy: haproxyResultSchema
  },
  required: ['state', 'previous', 'changed']
} as const

export interface PutStateResponse { state: AdminState; previous: AdminState; changed: boolean; haproxy?: HaproxyResult }

export const moveClientsResponseSchema = haproxyResultSchema

const storeStatsSchema = {
  type: 'object',
  properties: {
    entries: { type: 'integer' },
    bytes: { type: 'integer' },
    hits: { type: 'integer' },
    misses: { type: 'integer' }
  },
  required: ['entries', 'bytes', 'hits', 'misses']
} as const

export interface StoreStats { entries: number; bytes: number; hits: number; misses: number }

export const cacheSchema = {
  type: 'object',
  properties: {
    l2: {
      type: 'object',
      properties: { ...storeStatsSchema.properties, maxEntries: { type: 'integer' }, maxBytes: { type: 'integer' } },
      required: [...storeStatsSchema.required, 'maxEntries', 'maxBytes']
    },
    l1: {
      type: 'array',
      items: { type: 'object', properties: { pid: { type: 'integer' }, ...storeStatsSchema.properties }, required: storeStatsSchema.required }
    },
    sampledAt: { type: 'string' },
    store: storeStatusSchema
  },
  required: ['l2', 'l1']
} as const

export interface CacheBody {
  l2: StoreStats & { maxEntries: number; maxBytes: number }
  /** One entry per worker that answered the last sample. */
  l1: Array<StoreStats & { pid?: number }>
  sampledAt?: string
  /** The shared store (--session-store), its connection and its breakers: `open` = that path is not asked now. */
  store?: StoreStatus
}

export const peersSchema = {
  type: 'object',
  properties: {
    sync: { type: 'string' },
    peers: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          address: { type: 'string' },
          nodeId: { type: 'string' },
          // Multicast: a row is a node; every address it was heard from.
          addresses: { type: 'array', items: { type: 'string' } },
          configured: { type: 'boolean' },
          lastSeen: { type: 'string' },
          packetsIn: { type: 'integer' },
          packetsOut: { type: 'integer' },
          sendErrors: { type: 'integer' },
          rejected: { type: 'object', additionalProperties: { type: 'integer' } }
        },
        required: ['address', 'packetsIn', 'packetsOut', 'rejected']
      }
    }
  },
  required: ['sync', 'peers']
} as const

export interface PeerBody {
  address: string
  nodeId?: string
  addresses?: string[]
  configured?: boolean
  lastSeen?: string
  packetsIn: number
  packetsOut: number
  sendErrors?: number
  rejected: Record<string, number | undefined>
}

/** `sync` is the listen address, or "off". */
export interface PeersBody { sync: string; peers: PeerBody[] }

const stapleStateSchema = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['good', 'revoked', 'none'] },
    thisUpdate: { type: 'string' },
    nextUpdate: { type: 'string' },
    reason: { type: 'string' }
  },
  required: ['status']
} as const

export const certificatesSchema = {
  type: 'object',
  properties: {
    terminator: { type: 'string', enum: ['tlsfleet', 'haproxy'] },
    ocspStapling: { type: 'boolean' },
    certificates: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          file: { type: 'string' },
          names: { type: 'array', items: { type: 'string' } },
          default: { type: 'boolean' },
          keyType: { type: 'string' },
          curve: { type: 'string' },
          notAfter: { type: 'string' },
          expiresInDays: { type: 'integer' },
          ocsp: stapleStateSchema,
          attention: { type: 'array', items: { type: 'string', enum: CERTIFICATE_ATTENTION } }
        },
        required: ['file', 'names', 'keyType', 'notAfter', 'expiresInDays', 'attention']
      }
    },
    note: { type: 'string' },
    omitted: { type: 'integer' }
  },
  required: ['terminator', 'ocspStapling', 'certificates']
} as const

/** One certificate file the workers serve, in load order (the first is the default: clients without SNI get it). */
export interface CertificateBody {
  file: string
  names: string[]
  default?: boolean
  keyType: string
  curve?: string
  /** ISO 8601. */
  notAfter: string
  /** Whole days left (negative once expired). */
  expiresInDays: number
  /** With --ocsp-dir: what is stapled for it, or why nothing is. */
  ocsp?: StapleState
  /** Why it needs the operator (certificateAttention); empty when it does not. */
  attention: CertificateAttention[]
}

/** `GET /v1/certificates`: what the node serves (HAProxy's own certificates are HAProxy's: `note`). */
export interface CertificatesBody {
  terminator: 'tlsfleet' | 'haproxy'
  ocspStapling: boolean
  certificates: CertificateBody[]
  note?: string
  /** The dashboard: certificates left out of its table (GET /v1/certificates lists them all). */
  omitted?: number
}
