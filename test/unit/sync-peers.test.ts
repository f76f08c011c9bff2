import assert from 'node:assert/strict'
import os from 'node:os'
import { test } from 'node:test'
import { loadConfig } from '../../src/config/load.js'
import { checkOptionCombinations } from '../../src/config/node-checks.js'
import { formatSyncPeer, parseSyncPeer } from '../../src/config/sync-peer.js'
import { ConfigConflictError, ConfigError } from '../../src/errors.js'
import { DnsPeerSource, isSelf, MAX_PEERS_PER_NAME } from '../../src/sync/peer-source.js'
import type { Logger } from '../../src/util/logger.js'
import { DnsResponder } from '../helpers/dns-responder.js'

test('--sync-peer: HOST:PORT or dns:NAME:PORT', () => {
  assert.deepEqual(parseSyncPeer('10.0.0.2:8446'), { host: '10.0.0.2', port: 8446 })
  assert.deepEqual(parseSyncPeer('dns:tlsfleet-nodes:9443'), { dns: 'tlsfleet-nodes', port: 9443 })
  assert.deepEqual(parseSyncPeer('dns:nodes.farm.svc.cluster.local.:9443'), { dns: 'nodes.farm.svc.cluster.local.', port: 9443 })
  assert.equal(formatSyncPeer({ dns: 'nodes', port: 1 }), 'dns:nodes:1')
  assert.match(parseSyncPeer('dns:nodes') as string, /dns:NAME:PORT/)
  assert.match(parseSyncPeer('dns:bad name:1') as string, /not a DNS name/)
  assert.match(parseSyncPeer('dns:nodes:0') as string, /not a port number/)
  assert.throws(() => loadConfig({ env: { TLSFLEET_SYNC_PEER: 'dns:-x:1' } }), (err) => err instanceof ConfigError && /TLSFLEET_SYNC_PEER/.test(err.message))
  assert.deepEqual(loadConfig({ env: { TLSFLEET_SYNC_PEER: 'dns:nodes:9443,10.0.0.2:9443' } }).syncPeer, [{ dns: 'nodes', port: 9443 }, { host: '10.0.0.2', port: 9443 }])
})

test('dns peers need --sync-listen; --sync-dns-server takes IP or IP:PORT only', () => {
  assert.throws(() => checkOptionCombinations(loadConfig({ env: {}, flags: { 'sync-peer': ['dns:nodes:9443'] } })), ConfigConflictError)
  assert.equal(loadConfig({ env: {}, flags: { 'sync-dns-server': '127.0.0.1:5353' } }).syncDnsServer, '127.0.0.1:5353')
  assert.equal(loadConfig({ env: {}, flags: { 'sync-dns-server': '::1' } }).syncDnsServer, '::1')
  assert.throws(() => loadConfig({ env: {}, flags: { 'sync-dns-server': 'dns.example:53' } }), ConfigError)
})

test('a node is never its own peer: its listen address, or any local address when it listens on all', () => {
  const self = { host: '127.0.0.2', port: 9443 }
  assert.equal(isSelf({ host: '127.0.0.2', port: 9443 }, self), true)
  assert.equal(isSelf({ host: '::ffff:127.0.0.2', port: 9443 }, self), true)
  assert.equal(isSelf({ host: '127.0.0.3', port: 9443 }, self), false)
  assert.equal(isSelf({ host: '127.0.0.2', port: 9444 }, self), false)
  const any = { host: '0.0.0.0', port: 9443 }
  assert.equal(isSelf({ host: '127.0.0.9', port: 9443 }, any), true)
  const own = Object.values(os.networkInterfaces()).flat().find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)
  if (own !== undefined) assert.equal(isSelf({ host: own.address, port: 9443 }, any), true)
  assert.equal(isSelf({ host: '192.0.2.1', port: 9443 }, any), false)
})

test('a dns: peer whose answer holds more than 64 addresses adds the first 64 in address order, warned about once (the answer decides how many datagrams each New costs)', async () => {
  const dns = await DnsResponder.start()
  const many = Array.from({ length: 70 }, (_, i) => `127.1.${Math.floor(i / 10)}.${(i % 10) + 1}`)
  dns.records.set('peers.test', many)
  const warnings: Array<Record<string, unknown>> = []
  const log = { warn: (fields: Record<string, unknown>, msg: string) => warnings.push({ ...fields, msg }), info: () => {}, debug: () => {} } as unknown as Logger
  const source = new DnsPeerSource({ peers: [{ dns: 'peers.test', port: 9443 }], self: { host: '127.0.0.1', port: 9443 }, refreshMs: 60_000, server: dns.server, log })
  try {
    await source.refresh()
    assert.equal(source.list().length, MAX_PEERS_PER_NAME)
    assert.deepEqual(source.list().map((p) => p.host), [...many].sort().slice(0, MAX_PEERS_PER_NAME))
    await source.refresh()
    assert.equal(warnings.length, 1, JSON.stringify(warnings))
    assert.deepEqual([warnings[0]?.peerName, warnings[0]?.addresses, warnings[0]?.used], ['peers.test', 70, 64])
    dns.records.set('peers.test', many.slice(0, 3))
    await source.refresh()
    assert.equal(source.list().length, 3)
  } finally {
    source.close()
    await dns.close()
  }
})
