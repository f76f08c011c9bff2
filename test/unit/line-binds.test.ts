import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { ContextPool } from '../../src/tls/context-pool.js'
import { loadTlsMaterial } from '../../src/tls/tls-material.js'
import { resolveTlsPolicy, type PolicyOptions } from '../../src/tls/tls-policy.js'
import { SniRouter } from '../../src/tls/sni-router.js'
import type { Logger } from '../../src/util/logger.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'

const log = { warn: () => {}, error: () => {}, info: () => {} } as unknown as Logger
const policyOptions: PolicyOptions = { tlsProfile: 'intermediate', tlsMinVersion: '', tlsMaxVersion: '', ciphers: '', ciphersuites: '', ecdhCurves: '', preferServerCiphers: '', sigalgs: '' }
const policy = resolveTlsPolicy(policyOptions)

test('SNI router: a wildcard with excluded names leaves them to the next wildcard of the parent, else the fallback; exact names win', () => {
  const router = new SniRouter('default')
  router.add('*.example.com', 'wild', ['secret.example.com'])
  router.add('*.example.com', 'second')
  router.add('*.example.com', 'never')
  router.add('*.other.test', 'other', ['secret.other.test'])
  router.add('exact.example.com', 'exact')
  assert.equal(router.lookup('www.example.com'), 'wild')
  assert.equal(router.lookup('secret.example.com'), 'second')
  assert.equal(router.lookup('SECRET.other.test'), 'default')
  assert.equal(router.lookup('a.other.test'), 'other')
  assert.equal(router.lookup('exact.example.com'), 'exact')
  assert.deepEqual([...router.values()], ['default', 'exact', 'wild', 'second', 'other'])
})

test('crt-list material in a worker: each name gets its line\'s settings; one certificate on two lines never shares a session-ID context across other settings', async () => {
  const dir = tempDir()
  const wild = makeCertificate(dir, 'wild', ['*.example.com', 'example.com'])
  const first = makeCertificate(dir, 'first', ['first.test'])
  const ca = makeCertificate(dir, 'ca', ['ca.test'])
  const list = path.join(dir, 'list.txt')
  fs.writeFileSync(list, [
    `${wild} [verify required ca-file ${ca} alpn h2,http/1.1] api.example.com`,
    `${wild} [ssl-min-ver TLSv1.0] legacy.example.com`,
    `${wild} *.example.com !secret.example.com`,
    `${wild} [verify optional ca-file ${ca}] www.example.com`,
    `${wild} [alpn h2] !www.example.com`
  ].join('\n'))
  const { material } = await loadTlsMaterial({
    cert: [first], certDir: '', crtList: [list], stateDir: dir, clientCa: '', crl: '',
    crtListGlobals: { policyOptions, clientVerify: 'none', alpn: [], sessionTickets: false }
  }, log)
  assert.deepEqual(material.certificates.map((c) => path.basename(c.path)), ['first.pem', 'wild.pem'], 'each file once')
  assert.equal(material.served?.length, 6)
  const pool = new ContextPool(material, { sessionIdContext: '', sessionTimeoutSeconds: 300, policy, clientVerify: 'none', alpn: [], sessionTickets: false, ticketKeys: { runs: [] }, ticketRotationSeconds: 3600 })
  const router = pool.routerFor(undefined)
  const api = router.lookup('api.example.com')
  const legacy = router.lookup('legacy.example.com')
  const other = router.lookup('other.example.com')
  const www = router.lookup('www.example.com')
  assert.equal(router.lookup(undefined), router.lookup('first.test'), 'no SNI: the first --cert')
  assert.equal(router.lookup('secret.example.com'), router.fallback, 'excluded from the wildcard line: the default certificate')
  assert.equal(router.lookup('example.com'), router.fallback, 'a line with SNI filters serves only them, not the certificate\'s names')
  assert.equal(api.bind?.clientVerify, 'require')
  assert.equal(api.bind?.socketOptions.requestCert, true)
  assert.equal(api.bind?.socketOptions.rejectUnauthorized, true)
  assert.deepEqual(api.bind?.socketOptions.ALPNProtocols, Buffer.from('\x02h2\x08http/1.1', 'latin1'))
  assert.equal(legacy.bind?.policy.minVersion, 'TLSv1')
  assert.equal(legacy.bind?.socketOptions.requestCert, undefined)
  assert.equal(other.bind, pool.global, 'a line without keywords: the global settings')
  assert.equal(www.bind?.clientVerify, 'optional')
  assert.equal(www.bind?.socketOptions.rejectUnauthorized, false)
  // Same certificate, four settings: four session-ID contexts.
  const contexts = new Set([api, legacy, other, www].map((c) => c.sessionIdContext.toString('latin1')))
  assert.equal(contexts.size, 4)
  // A line without keywords keeps the context the same file has as --cert (sessions survive a move to a crt-list).
  const asCert = new ContextPool({ certificates: [material.certificates[1] as never], clientAuth: {} }, { sessionIdContext: '', sessionTimeoutSeconds: 300, policy, clientVerify: 'none', sessionTickets: false, ticketKeys: { runs: [] }, ticketRotationSeconds: 3600 })
  assert.deepEqual(asCert.routerFor(undefined).lookup('other.example.com').sessionIdContext, other.sessionIdContext)
  // The contexts carry the line's policy.
  assert.equal(api.all.context() !== legacy.all.context(), true)
  assert.equal(pool.knowsSessionIdContext(api.sessionIdContext), true)
})

test('crt-list lines with the same settings share them: a name\'s RSA and ECDSA certificates on two such lines combine in one choice; other settings do not', async () => {
  const dir = tempDir()
  const rsa = makeCertificate(dir, 'rsa', ['dual.test', 'split.test'])
  const ecdsa = makeCertificate(dir, 'ecdsa', ['dual.test', 'split.test'], 'ecdsa')
  const list = path.join(dir, 'list.txt')
  fs.writeFileSync(list, [
    `${rsa} [alpn h2] dual.test`,
    `${ecdsa} [alpn h2] dual.test`,
    `${rsa} [alpn h2] split.test`,
    `${ecdsa} [alpn http/1.1] split.test`
  ].join('\n'))
  const { material } = await loadTlsMaterial({
    cert: [], certDir: '', crtList: [list], stateDir: dir, clientCa: '', crl: '',
    crtListGlobals: { policyOptions, clientVerify: 'none', alpn: [], sessionTickets: true }
  }, log)
  const pool = new ContextPool(material, { sessionIdContext: '', sessionTimeoutSeconds: 300, policy, clientVerify: 'none', sessionTickets: false, ticketKeys: { runs: [] }, ticketRotationSeconds: 3600 })
  const router = pool.routerFor(undefined)
  const dual = router.lookup('dual.test')
  assert.ok(dual.rsa !== undefined && dual.ecdsa !== undefined, 'both key types under one choice')
  const split = router.lookup('split.test')
  assert.ok(split.rsa !== undefined && split.ecdsa === undefined, 'the first line for the name wins; a line with other settings does not join it')
  assert.equal(dual.bind, split.bind, 'the same keywords: one Bind')
})
