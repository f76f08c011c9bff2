import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { test } from 'node:test'
import { Registry } from 'prom-client'
import { PrimarySessionCache } from '../../src/cache/primary-session-cache.js'
import type { HostPort } from '../../src/config/host-port.js'
import { V2Codec } from '../../src/sync/codecs.js'
import { farmKeyId } from '../../src/sync/farm-secret.js'
import { SyncService } from '../../src/sync/sync-service.js'
import { createLogger } from '../../src/util/logger.js'
import { freePort } from '../helpers/ports.js'

const secret = crypto.randomBytes(48)
const farmKeys = [{ id: farmKeyId(secret), secret }]
const clock = { sessionTimeoutSeconds: 300, maxSkewSeconds: 5 }

async function startNode (listen: HostPort, peers: HostPort[], name: string): Promise<{ sync: SyncService; cache: PrimarySessionCache }> {
  const cache = new PrimarySessionCache({ maxEntries: 100_000, maxBytes: 1 << 30, lifetimeSeconds: 300 })
  const sync = new SyncService({
    listen,
    peers: { list: () => peers, close: () => {} },
    multicastInterface: '',
    codec: new V2Codec(farmKeys, `${name}-${crypto.randomUUID()}`, clock),
    recvBufferBytes: 16 << 20
  }, cache, createLogger({ level: 'silent', format: 'json' }), new Registry())
  await sync.start()
  return { sync, cache }
}

test('a snapshot reads L2 as its chunks go: sessions deleted while it is sent are not sent (L2 is not copied whole first)', async (t) => {
  const [responderPort, joinerPort] = [await freePort(), await freePort()]
  const responderAt = { host: '127.0.0.1', port: responderPort }
  const responder = await startNode(responderAt, [], 'responder')
  const joiner = await startNode({ host: '127.0.0.1', port: joinerPort }, [responderAt], 'joiner')
  t.after(async () => { await responder.sync.close(); await joiner.sync.close() })
  const held = 30_000 // ~360 chunks of 16 kB, sent 4 per millisecond at most
  const createdAt = Math.floor(Date.now() / 1000)
  for (let i = 0; i < held; i++) responder.cache.l2.set(crypto.randomBytes(32), { der: crypto.randomBytes(150), createdAt })

  // As soon as the first sessions arrive, the responder's L2 is emptied (sessions deleted or expired meanwhile).
  let cleared = false
  const watch = setInterval(() => {
    if (!cleared && joiner.cache.l2.size > 0) {
      responder.cache.l2.clear()
      cleared = true
    }
  }, 0)
  t.after(() => clearInterval(watch))
  const result = await joiner.sync.warmJoin(10_000)
  assert.ok(cleared, 'the joiner got sessions')
  assert.equal(result.responders, 1)
  // Copied whole before the first chunk left, all 30,000 arrived anyway.
  assert.ok(result.sessions < held / 2, `${result.sessions} of ${held} sessions sent after they were deleted`)
  assert.ok(result.sessions > 0)
})
