/**
 * `GET /v1/dashboard`: everything the dashboard page draws, in one answer. Like the other
 * routes, the schema is also the serializer (fields it does not name are dropped).
 */
import type { HistorySeries } from './dashboard-history.js'
import { certificatesSchema, peersSchema, stateSchema, type CertificatesBody, type PeerBody, type StateBody } from './schemas.js'

const numbers = { type: 'array', items: { type: 'number' } } as const
const ratio = { type: ['number', 'null'] } as const
const lookups = {
  type: 'object',
  properties: { hits: { type: 'integer' }, misses: { type: 'integer' }, hitRatio: ratio },
  required: ['hits', 'misses', 'hitRatio']
} as const

export const dashboardSchema = {
  type: 'object',
  properties: {
    generatedAt: { type: 'string' },
    node: stateSchema,
    history: {
      type: 'object',
      properties: {
        intervalSeconds: { type: 'number' },
        t: numbers,
        full: numbers,
        resumed: numbers,
        syncIn: numbers,
        syncRejected: numbers,
        syncOut: numbers,
        syncSendErrors: numbers
      },
      required: ['intervalSeconds', 't', 'full', 'resumed', 'syncIn', 'syncRejected', 'syncOut', 'syncSendErrors']
    },
    lastMinute: {
      type: 'object',
      properties: { seconds: { type: 'number' }, full: { type: 'integer' }, resumed: { type: 'integer' } },
      required: ['seconds', 'full', 'resumed']
    },
    cache: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          level: { type: 'string' },
          entries: { type: 'integer' },
          bytes: { type: 'integer' },
          ...lookups.properties,
          lastMinute: lookups
        },
        required: ['level', 'entries', 'bytes', ...lookups.required, 'lastMinute']
      }
    },
    sync: {
      type: 'object',
      properties: {
        listen: { type: 'string' },
        packets: {
          type: 'array',
          items: {
            type: 'object',
            properties: { direction: { type: 'string' }, result: { type: 'string' }, total: { type: 'integer' }, lastMinute: { type: 'integer' } },
            required: ['direction', 'result', 'total', 'lastMinute']
          }
        },
        peers: peersSchema.properties.peers
      },
      required: ['listen', 'packets', 'peers']
    },
    tickets: {
      type: 'object',
      properties: {
        enabled: { type: 'boolean' },
        farmWide: { type: 'boolean' },
        farmSecrets: { type: 'integer' },
        rotationSeconds: { type: 'integer' },
        generation: { type: 'integer' },
        keyName: { type: 'string' },
        since: { type: 'string' },
        nextRotation: { type: 'string' },
        secondsToNextRotation: { type: 'number' },
        acceptedGenerations: { type: 'array', items: { type: 'integer' } }
      },
      required: ['enabled']
    },
    haproxy: {
      type: 'object',
      properties: {
        socket: { type: 'string' },
        backend: { type: 'string' },
        reachable: { type: 'boolean' },
        error: { type: 'string' },
        servers: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              name: { type: 'string' },
              self: { type: 'boolean' },
              status: { type: 'string' },
              weight: { type: 'number' },
              currentSessions: { type: 'integer' },
              checkStatus: { type: 'string' },
              agentStatus: { type: 'string' },
              lastAgent: { type: 'string' },
              address: { type: 'string' }
            },
            required: ['name', 'self', 'status']
          }
        }
      },
      required: ['socket', 'backend', 'reachable', 'servers']
    },
    certificates: certificatesSchema
  },
  required: ['generatedAt', 'node', 'history', 'lastMinute', 'cache', 'sync', 'tickets', 'certificates']
} as const

export interface Lookups { hits: number; misses: number; hitRatio: number | null }

export interface CacheLevelBody extends Lookups {
  /** `l1` (all workers of this node together) or `l2` (the primary's node-wide cache). */
  level: string
  entries: number
  bytes: number
  lastMinute: Lookups
}

export interface SyncPacketsBody { direction: string; result: string; total: number; lastMinute: number }

export interface TicketsBody {
  enabled: boolean
  /** Derived from the farm secret (every node issues and accepts the same tickets), or random to this node. */
  farmWide?: boolean
  /** Farm secrets held now (2 during a change-over; an emptied second file is none), as of the last SIGHUP. */
  farmSecrets?: number
  rotationSeconds?: number
  /** The epoch of the key new tickets are issued under. */
  generation?: number
  /** Its 16-byte key name in hex (farm tag + epoch): the same on every node of one farm. */
  keyName?: string
  since?: string
  nextRotation?: string
  secondsToNextRotation?: number
  /** Generations whose tickets are accepted now, newest first. */
  acceptedGenerations?: number[]
}

export interface BackendServerBody {
  name: string
  /** This node's own entry (--haproxy-server). */
  self: boolean
  status: string
  weight?: number
  currentSessions?: number
  checkStatus?: string
  agentStatus?: string
  lastAgent?: string
  address?: string
}

export interface FarmViewBody { socket: string; backend: string; reachable: boolean; error?: string; servers: BackendServerBody[] }

export interface DashboardBody {
  generatedAt: string
  node: StateBody
  history: HistorySeries & { intervalSeconds: number }
  lastMinute: { seconds: number; full: number; resumed: number }
  cache: CacheLevelBody[]
  sync: { listen: string; packets: SyncPacketsBody[]; peers: PeerBody[] }
  tickets: TicketsBody
  /** HAProxy's view of every server of this node's backend (with --haproxy-socket). */
  haproxy?: FarmViewBody
  /** As GET /v1/certificates. */
  certificates: CertificatesBody
}
