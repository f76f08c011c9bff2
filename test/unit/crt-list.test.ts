import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { CertificateError } from '../../src/errors.js'
import { parseCrtList } from '../../src/tls/crt-list.js'
import { loadCrtLists, type CrtListGlobals } from '../../src/tls/crt-list-load.js'
import type { PolicyOptions } from '../../src/tls/tls-policy.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'

test('crt-list lines: the file, the sslbindconf in brackets, exact, wildcard and negated SNI filters; comments and blank lines skipped', () => {
  const lines = parseCrtList([
    '# a comment',
    '',
    '/etc/ssl/api.pem [verify required ca-file /etc/ssl/ca.pem alpn h2,http/1.1] api.example.com   # trailing comment',
    '/etc/ssl/legacy.pem [ ssl-min-ver TLSv1.0 ] Legacy.Example.com',
    '/etc/ssl/wild.pem *.example.com !secret.example.com',
    '/etc/ssl/plain.pem',
    '/etc/ssl/notix.pem [no-tls-tickets curves X25519:prime256v1 sigalgs ECDSA+SHA256 ciphers ECDHE-RSA-AES128-GCM-SHA256 ciphersuites TLS_AES_128_GCM_SHA256 ssl-max-ver TLSv1.2 crl-file /c.pem]'
  ].join('\r\n'), 'list.txt')
  assert.deepEqual(lines.map((l) => l.line), [3, 4, 5, 6, 7])
  assert.deepEqual(lines[0], { line: 3, crtFile: '/etc/ssl/api.pem', keywords: { verify: 'require', caFile: '/etc/ssl/ca.pem', alpn: ['h2', 'http/1.1'] }, names: ['api.example.com'], excluded: [] })
  assert.deepEqual(lines[1]?.keywords, { sslMinVer: 'TLSv1' })
  assert.deepEqual(lines[1]?.names, ['legacy.example.com'])
  assert.deepEqual(lines[2], { line: 5, crtFile: '/etc/ssl/wild.pem', keywords: {}, names: ['*.example.com'], excluded: ['secret.example.com'] })
  assert.deepEqual(lines[3], { line: 6, crtFile: '/etc/ssl/plain.pem', keywords: {}, names: [], excluded: [] })
  assert.deepEqual(lines[4]?.keywords, { noTlsTickets: true, curves: 'X25519:prime256v1', sigalgs: 'ECDSA+SHA256', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', ciphersuites: 'TLS_AES_128_GCM_SHA256', sslMaxVer: 'TLSv1.2', crlFile: '/c.pem' })
})

test('crt-list refusals name the file, the line and the keyword or problem', () => {
  const refused = (text: string): string => {
    try {
      parseCrtList(text, '/etc/tlsfleet/list.txt')
    } catch (err) {
      return (err as Error).message
    }
    assert.fail(`accepted: ${text}`)
  }
  assert.equal(refused('# only\n\n/a.pem [ssl-min-ver TLSv1.2 strict-sni] a.test'), 'crt-list "/etc/tlsfleet/list.txt" line 3: keyword "strict-sni" is not supported (supported: alpn, ciphers, ciphersuites, curves, sigalgs, ssl-min-ver, ssl-max-ver, verify, ca-file, crl-file, no-tls-tickets)')
  assert.match(refused('/a.pem\n/b.pem [verify maybe]'), /line 2: keyword "verify": "maybe" is not one of none, optional, required/)
  assert.match(refused('/a.pem [ssl-min-ver SSLv3]'), /line 1: keyword "ssl-min-ver": "SSLv3" is not one of TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3/)
  assert.match(refused('/a.pem [alpn h2 a.test'), /line 1: "\[" without its "\]"/)
  assert.match(refused('/a.pem [alpn]'), /line 1: keyword "alpn" needs a value/)
  assert.match(refused('/a.pem [alpn h2 alpn http/1.1]'), /line 1: keyword "alpn" given twice/)
  assert.match(refused('/a.pem a.test [alpn h2]'), /line 1: "\[" or "\]" after the SNI filters/)
  assert.match(refused('/a.pem bad_name!.test'), /line 1: SNI filter "bad_name!.test" is not a host name/)
  assert.match(refused('/a.pem a.*.test'), /line 1: SNI filter "a\.\*\.test"/)
  assert.match(refused('/a.pem !*.a.test'), /line 1: SNI filter "!\*\.a\.test": a negated wildcard excludes nothing/)
  assert.match(refused('"/a b.pem" a.test'), /line 1: quotes and backslashes are not supported/)
  assert.match(refused('# nothing\n\n'), /crt-list "\/etc\/tlsfleet\/list.txt" line 0: no certificate line in it/)
})

const policyOptions: PolicyOptions = { tlsProfile: 'intermediate', tlsMinVersion: '', tlsMaxVersion: '', ciphers: '', ciphersuites: '', ecdhCurves: '', preferServerCiphers: '', sigalgs: '' }
const globals: CrtListGlobals = { policyOptions, clientVerify: 'none', alpn: [], sessionTickets: true }

function load (dir: string, text: string): ReturnType<typeof loadCrtLists> {
  const file = path.join(dir, 'list.txt')
  fs.writeFileSync(file, text)
  return loadCrtLists([file], '--crt-list', globals, () => {}, () => ({}))
}

function loadRefusal (dir: string, text: string): string {
  try {
    load(dir, text)
  } catch (err) {
    assert.ok(err instanceof CertificateError, String(err))
    assert.equal(err.code, 'TLSFLEET_ERR_CERTIFICATE')
    return err.message
  }
  assert.fail(`accepted: ${text}`)
}

test('crt-list loading: each line\'s keywords over the global options; unset keywords keep them; a file on two lines read once', () => {
  const dir = tempDir()
  const cert = makeCertificate(dir, 'a', ['a.test', 'b.test'])
  const ca = makeCertificate(dir, 'ca', ['ca.test'])
  const lines = load(dir, `${cert} [verify required ca-file ${ca} alpn h2 ssl-max-ver TLSv1.2] a.test\n${cert} b.test\n${cert} [ssl-min-ver TLSv1.0 no-tls-tickets] legacy.test\n`)
  assert.equal(lines.length, 3)
  assert.equal(lines[0]?.bundle, lines[1]?.bundle)
  const api = lines[0]?.settings
  assert.equal(api?.clientVerify, 'require')
  assert.match(api?.clientAuth.ca ?? '', /BEGIN CERTIFICATE/)
  assert.deepEqual(api?.alpn, ['h2'])
  assert.equal(api?.policy.maxVersion, 'TLSv1.2')
  assert.equal(api?.policy.minVersion, 'TLSv1.2', 'ssl-min-ver not given: the global (intermediate) one')
  assert.equal(api?.sessionTickets, true)
  assert.equal(lines[1]?.settings, undefined, 'a line without keywords is served as --cert is')
  const legacy = lines[2]?.settings
  assert.equal(legacy?.policy.minVersion, 'TLSv1')
  assert.match(legacy?.policy.ciphers ?? '', /ECDHE-RSA-AES128-SHA.*@SECLEVEL=0/, 'TLS 1.0 without ciphers: Mozilla\'s old list')
  assert.equal(legacy?.sessionTickets, false)
  assert.notEqual(api?.key, legacy?.key)
})

test('crt-list loading refusals: the file and line, and the keyword, value or file at fault', () => {
  const dir = tempDir()
  const cert = makeCertificate(dir, 'a', ['a.test'])
  const list = path.join(dir, 'list.txt')
  assert.equal(loadRefusal(dir, `${cert} a.test\n${path.join(dir, 'missing.pem')} b.test\n`).startsWith(`--crt-list "${list}": line 2: certificate "${path.join(dir, 'missing.pem')}": `), true)
  assert.match(loadRefusal(dir, `${cert} [ciphers NOPE-CIPHER] a.test`), /^--crt-list ".*list\.txt": line 1: its TLS settings are refused: ciphers: "NOPE-CIPHER" matches no cipher/)
  assert.match(loadRefusal(dir, `${cert} [curves nocurve] a.test`), /line 1: its TLS settings are refused: curves: "nocurve" is not a group/)
  assert.match(loadRefusal(dir, `${cert} [sigalgs NOPE+SHA1] a.test`), /line 1: its TLS settings are refused: sigalgs: "NOPE\+SHA1"/)
  assert.match(loadRefusal(dir, `${cert} [ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.2] a.test`), /line 1: its TLS settings are refused: ssl-min-ver TLSv1.3 \(TLSv1.3\) is above ssl-max-ver TLSv1.2/)
  assert.match(loadRefusal(dir, `${cert} [verify required] a.test`), /line 1: verify required needs ca-file on the line or --client-ca/)
  assert.match(loadRefusal(dir, `${cert} [ca-file ${cert}] a.test`), /line 1: ca-file has no effect with verify none/)
  assert.match(loadRefusal(dir, `${cert} [verify optional ca-file ${path.join(dir, 'nope.pem')}] a.test`), /line 1: ca-file ".*nope\.pem": /)
  assert.match(loadRefusal(dir, `${cert} [alpn h2] a.test\n${cert} [tls-ticket-keys /x] b.test`), /line 2: keyword "tls-ticket-keys" is not supported/)
  try {
    loadCrtLists([path.join(dir, 'absent.txt')], 'TLSFLEET_CRT_LIST', globals, () => {}, () => ({}))
    assert.fail('an absent crt-list loaded')
  } catch (err) {
    assert.match((err as Error).message, /^TLSFLEET_CRT_LIST ".*absent\.txt": /)
  }
})
