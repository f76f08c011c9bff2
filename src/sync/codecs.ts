import crypto, { type KeyObject } from 'node:crypto'
import { ConfigConflictError } from '../errors.js'
import type { CertificateBundle } from '../tls/certificates.js'
import { sessionProtocolVersion, TLS1_3_VERSION } from '../tls/session-der.js'
import type { Logger } from '../util/logger.js'
import { FarmKeyRing, type FarmKey } from './farm-keys.js'
import type { RefusalContext } from './refusal-warning.js'
import type { RejectReason } from './reject-reasons.js'
import { backendOf, DEFAULT_SYNC_CIPHER, type SyncCipher } from './sync-aead.js'
import { ReplayGuard } from './replay-guard.js'
import { ReplayState } from './replay-state.js'
import { decodeStud, encodeStud, STUD_MAX_DER_BYTES, STUD_SESSION_ID_BYTES, studHmacKeyFromPrivateKeyPem } from './wire-stud.js'
import {
  batchedPacketOk, createSequenceCounter, decodeV2, encodeV2, frameBatchV2, MAX_BATCH_PACKETS, MAX_SMALL_PACKET_BYTES, MAX_UDP_PAYLOAD_BYTES,
  PacketTooBigError, splitDatagramV2, V2_BATCH_HEADER_BYTES, V2_BATCH_RECORD_OVERHEAD, type DecodeContext, type RefusalDetail, type SyncMessage
} from './wire-v2.js'

export type { SyncMessage } from './wire-v2.js'

/** A datagram as a codec read it: the message and, where the format names one, the sender's node id. */
export type DecodedPacket =
  | { ok: true; message: SyncMessage; sender?: string; sequence?: bigint }
  /** `twin` (v2): our node id on a packet this process did not send. */
  | ({ ok: false; reason: RejectReason; twin?: true } & RefusalDetail)

/**
 * One farm-sync wire format, as the sync service uses it. The service owns the socket, the
 * peers and the counters; the codec owns everything that depends on the format: what it can
 * carry, how a message becomes a datagram, and every check a datagram passes before it is
 * trusted (authentication, clock, replay, own echoes).
 */
export interface SyncCodec {
  readonly format: 'v2' | 'stud'
  /** Whether the format carries snapshots, so a joining node can ask its peers for their sessions. */
  readonly snapshots: boolean
  /** Once the socket is bound (v2: the replay state starts being saved). */
  start?: () => void
  /** At a stop, in the same turn as the socket closes (v2: the replay state's final save). */
  close?: () => void
  /** What seals this node's packets, for the start log (v2: the cipher and the code that runs it). */
  readonly sealedWith?: string
  /** For the start log (v2): the farm key's id and fingerprint, equal on nodes that share the secret. */
  readonly farmKey?: { id: number; fingerprint: string }
  /**
   * SIGHUP read other farm secrets (v2): seal with the first from the next packet on, open with
   * any. The replay window is per sender, not per key, so it carries over as it is.
   */
  setFarmKeys?: (keys: FarmKey[]) => void
  /** How several New/Del share a datagram; absent when the format sends one per datagram (stud). */
  readonly batching?: BatchFormat
  /** What this node holds and allows, for the warning about a peer whose packets are all refused. */
  readonly refusalContext: RefusalContext
  /** The packet for `message`; undefined when this format cannot carry it. Throws when the message is malformed. */
  encode (message: SyncMessage): Buffer | undefined
  /**
   * Every packet a datagram carries, each judged on its own (one, or a batch's); never throws.
   * A refused packet names the reason it is counted under. `fromOwnSocket`: the datagram comes
   * from this node's own sync socket (our address and port), where our multicast echo comes from.
   */
  decode (datagram: Buffer, fromOwnSocket?: boolean): DecodedPacket[]
}

/** A format's batch datagram: a frame of `headerBytes`, and `recordBytes` more per packet. */
export interface BatchFormat {
  maxBytes: number
  headerBytes: number
  recordBytes: number
  maxPackets: number
  frame (packets: Buffer[]): Buffer
}

export interface CodecClock {
  sessionTimeoutSeconds: number
  maxSkewSeconds: number
  now?: () => number
}

/** v2's options beyond the clock. */
export interface V2Options extends CodecClock {
  /** The AEAD this node seals with (it opens both). Default chacha20-poly1305. */
  cipher?: SyncCipher
}

/** Where v2 keeps its replay window across restarts (replay-state.ts); without it, only the start-time floor holds. */
export interface ReplayPersistence {
  file: string
  log: Logger
  /** Who may own the file and --state-dir (safe-files.ts trustedOwners, with --user's). */
  owners?: readonly number[]
}

/**
 * v2, the default: ChaCha20-Poly1305 or AES-256-GCM under the farm key, a replay window per sender (wire-v2.ts),
 * and a floor under the dates of what it accepts: its start minus the skew, or what the
 * replay state carries over from before a restart.
 */
export class V2Codec implements SyncCodec {
  readonly format = 'v2'
  readonly snapshots = true
  readonly batching: BatchFormat = {
    maxBytes: MAX_SMALL_PACKET_BYTES,
    headerBytes: V2_BATCH_HEADER_BYTES,
    recordBytes: V2_BATCH_RECORD_OVERHEAD,
    maxPackets: MAX_BATCH_PACKETS,
    frame: frameBatchV2
  }

  readonly nodeId: Buffer
  readonly cipher: SyncCipher
  readonly sealedWith: string
  farmKey: { id: number; fingerprint: string }
  readonly refusalContext: RefusalContext
  private keyRing: FarmKeyRing
  private readonly nextSequence: () => bigint
  private readonly replay = new ReplayGuard()
  /** Absent without persistence (tests, benchmarks). */
  readonly replayState?: ReplayState

  private readonly decodeContext: DecodeContext & { keyRing: FarmKeyRing }

  constructor (farmKeys: FarmKey[], nodeName: string, clock: V2Options, persistence?: ReplayPersistence) {
    this.keyRing = new FarmKeyRing(farmKeys)
    this.cipher = clock.cipher ?? DEFAULT_SYNC_CIPHER
    this.sealedWith = `${this.cipher} (${backendOf(this.cipher)})`
    this.farmKey = { id: this.keyRing.current().id, fingerprint: this.keyRing.current().fingerprint }
    this.nodeId = v2NodeId(nodeName)
    this.refusalContext = { keyIds: this.keyRing.ids(), maxSkewSeconds: clock.maxSkewSeconds, sessionLifetimeSeconds: clock.sessionTimeoutSeconds }
    const now = clock.now ?? Date.now
    const startMs = now()
    const startFloor = startMs - clock.maxSkewSeconds * 1000
    // The sequences this process has sent: a packet with our id outside them, sent since we
    // started, is another node's that was started with the same --node-id (on the same host,
    // where its address does not tell it apart: multicast, one group port).
    if (persistence !== undefined) {
      this.replayState = new ReplayState({ file: persistence.file, log: persistence.log, ...(persistence.owners !== undefined ? { owners: persistence.owners } : {}), startMs, now, maxSkewMs: clock.maxSkewSeconds * 1000, sessionLifetimeMs: clock.sessionTimeoutSeconds * 1000 }, this.replay)
    }
    // Above every sequence the previous process with this state sent, even if the clock is now behind it.
    const sequenceFromMs = Math.max(startMs, this.replayState?.previousCeilingMs ?? -Infinity)
    const previousSavedAtMs = this.replayState?.previousSavedAtMs
    if (previousSavedAtMs !== undefined && previousSavedAtMs > startMs) {
      persistence?.log.warn({ behindMs: previousSavedAtMs - startMs }, 'sync: this clock is behind the previous run\'s (it went back between the two starts); sequence numbers continue above the previous run\'s, which peers would otherwise refuse as replays')
    }
    const counter = createSequenceCounter(sequenceFromMs)
    let first: bigint | undefined
    let last = -1n
    this.nextSequence = () => {
      last = counter()
      first ??= last
      return last
    }
    const ownPacket = (sequence: bigint, sentAtMs: number): boolean => sentAtMs < startMs || (first !== undefined && sequence >= first && sequence <= last)
    const state = this.replayState
    this.decodeContext = {
      keyRing: this.keyRing,
      ownNodeId: this.nodeId,
      replay: this.replay,
      now,
      sessionLifetimeSeconds: clock.sessionTimeoutSeconds,
      maxSkewSeconds: clock.maxSkewSeconds,
      maxPacketBytes: MAX_UDP_PAYLOAD_BYTES,
      notBeforeMs: state?.notBeforeMs ?? startFloor,
      repliesNotBeforeMs: startFloor,
      ownPacket,
      ...(state !== undefined ? { beforeAccept: (sentAtMs: number) => state.beforeAccept(sentAtMs) } : {})
    }
  }

  start (): void { this.replayState?.start() }

  setFarmKeys (keys: FarmKey[]): void {
    // Built whole first: a bad set (the caller's bug) throws here and changes nothing.
    const ring = new FarmKeyRing(keys)
    this.keyRing = ring
    this.decodeContext.keyRing = ring
    this.farmKey = { id: ring.current().id, fingerprint: ring.current().fingerprint }
    this.refusalContext.keyIds = ring.ids()
  }

  close (): void { this.replayState?.close() }

  encode (message: SyncMessage): Buffer {
    return encodeV2(message, { keyRing: this.keyRing, nodeId: this.nodeId, nextSequence: this.nextSequence, cipher: this.cipher, now: this.decodeContext.now })
  }

  decode (datagram: Buffer, fromOwnSocket = false): DecodedPacket[] {
    const split = splitDatagramV2(datagram)
    if (!split.ok) return [split]
    if (!split.batch) return [decodeV2(split.packets[0] as Buffer, this.decodeContext, fromOwnSocket)]
    let refusedOpen = 0
    let last: DecodedPacket | undefined
    return split.packets.map((packet) => {
      if (!batchedPacketOk(packet)) return { ok: false, reason: 'bad_op' }
      // A batch is one sender's packets of one moment: they stand or fall together. Past the
      // second refused after an AEAD open, the rest count like the last one, unopened, or a
      // forged batch would cost one failed open per packet (22 in 1400 bytes), a replayed one
      // one open per packet.
      if (last !== undefined && refusedOpen >= MAX_REFUSED_OPENS_PER_BATCH) return last
      const result = decodeV2(packet, this.decodeContext, fromOwnSocket)
      if (!result.ok && REFUSED_AFTER_OPEN.has(result.reason)) {
        refusedOpen++
        last = result
      }
      return result
    })
  }
}

/** Refused packets of a batch that cost an AEAD open, before the rest are no longer opened. */
export const MAX_REFUSED_OPENS_PER_BATCH = 2

/**
 * decodeV2's refusals at or after the AEAD open (the tag, then what only an opened packet tells);
 * `own` also when our echo from our own socket is refused before it (a batch of them stands or
 * falls together all the same).
 */
const REFUSED_AFTER_OPEN: ReadonlySet<RejectReason> = new Set(['bad_tag', 'own', 'future', 'stale', 'before_start', 'replay', 'bad_body'])

/** How far in the past stud datagrams are dated, at least (hitch asserts on a future date). */
export const STUD_CLOCK_MARGIN_SECONDS = 2

/**
 * stud/hitch's shared-cache datagram (wire-stud.ts): New only, signed but not encrypted, no
 * node id and no replay protection. Our own multicast echoes are recognised by the IDs we just
 * sent, and TLS 1.3 sessions (hitch shares them) are refused: they never resume by ID.
 */
export class StudCodec implements SyncCodec {
  readonly format = 'stud'
  readonly snapshots = false
  private readonly recentlySent = new Set<string>()

  private readonly hmacKey: KeyObject
  readonly refusalContext: RefusalContext

  constructor (hmacKey: Buffer, private readonly clock: CodecClock) {
    this.hmacKey = crypto.createSecretKey(hmacKey)
    this.refusalContext = { keyIds: [], maxSkewSeconds: clock.maxSkewSeconds, sessionLifetimeSeconds: clock.sessionTimeoutSeconds }
  }

  encode (message: SyncMessage): Buffer | undefined {
    if (message.op !== 'new') return undefined // the format has no Del and no snapshots
    if (message.sessionId.length > STUD_SESSION_ID_BYTES) return undefined // not an OpenSSL session ID: hitch could not use it
    if (message.session.length > STUD_MAX_DER_BYTES) throw new PacketTooBigError('new', message.session.length, STUD_MAX_DER_BYTES, 'stud (session DER)')
    this.recentlySent.add(message.sessionId.toString('hex'))
    if (this.recentlySent.size > 4096) this.recentlySent.delete(this.recentlySent.values().next().value as string)
    // hitch aborts on a date in the future (assert in handle_shcupd): date it safely in the past.
    const createdAt = message.createdAt - Math.max(this.clock.maxSkewSeconds, STUD_CLOCK_MARGIN_SECONDS)
    return encodeStud({ ...message, createdAt }, this.hmacKey)
  }

  decode (datagram: Buffer): DecodedPacket[] {
    return [this.decodeOne(datagram)]
  }

  private decodeOne (packet: Buffer): DecodedPacket {
    const result = decodeStud(packet, { hmacKey: this.hmacKey, now: this.clock.now ?? Date.now, sessionTimeoutSeconds: this.clock.sessionTimeoutSeconds, maxSkewSeconds: this.clock.maxSkewSeconds })
    if (!result.ok) return result
    if (this.recentlySent.has(result.message.sessionId.toString('hex'))) return { ok: false, reason: 'own' }
    if (sessionProtocolVersion(result.message.session) === TLS1_3_VERSION) return { ok: false, reason: 'tls13_session' }
    return { ok: true, message: result.message }
  }
}

/** The 8-byte node id v2 packets carry: derived from the node's name, so it is stable across restarts. */
export function v2NodeId (nodeName: string): Buffer {
  return crypto.createHash('sha256').update(nodeName).digest().subarray(0, 8)
}

/**
 * The codec `--sync-format` asks for. v2 needs the farm secret (checked with the other option
 * combinations); stud keys its HMAC with the first certificate's RSA key, as stud and hitch do.
 */
export function createSyncCodec (opts: {
  format: 'v2' | 'stud'
  farmKeys: FarmKey[]
  certificates: CertificateBundle[]
  nodeName: string
  /** v2's replay state across restarts. */
  persistence?: ReplayPersistence
} & V2Options): SyncCodec {
  if (opts.format === 'v2') return new V2Codec(opts.farmKeys, opts.nodeName, opts, opts.persistence)
  const first = opts.certificates[0]
  if (first === undefined) throw new ConfigConflictError('--sync-format stud needs a certificate with an RSA key (its HMAC key is derived from it)')
  let hmacKey: Buffer
  try {
    hmacKey = studHmacKeyFromPrivateKeyPem(first.key)
  } catch (err) {
    throw new ConfigConflictError(`--sync-format stud: ${(err as Error).message} (first --cert is "${first.path}")`)
  }
  return new StudCodec(hmacKey, opts)
}
