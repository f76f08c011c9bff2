import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { capturedClientHello } from '../helpers/client-hello.js'
import { startHaproxy, TCP_DEFAULTS } from '../helpers/haproxy.js'
import { eventually, runNodeToExit, startNode, type RunningNode } from '../helpers/node-process.js'
import { sClient, type SClientResult } from '../helpers/openssl.js'
import { TestCa } from '../helpers/pki.js'
import { freePorts } from '../helpers/ports.js'
import { byteRecords, rawExchange } from '../helpers/tls-client.js'

// --crt-list: HAProxy's crt-list file, each line a certificate with its own TLS settings and SNI
// filters, shown with real openssl s_client against a real node; the same file loaded by a
// real HAProxy behaves the same, so the format is HAProxy's.
const dir = tempDir()
const ca = new TestCa(path.join(dir, 'ca'), 'crt-list clients CA')
const client = ca.issue('client', { names: ['client one'], usage: 'client' })
const certs = {
  first: makeCertificate(dir, 'first', ['first.test']),
  api: makeCertificate(dir, 'api', ['api.example.com']),
  legacy: makeCertificate(dir, 'legacy', ['legacy.example.com']),
  wild: makeCertificate(dir, 'wild', ['*.example.com'])
}
const list = path.join(dir, 'list.txt')
const LIST = [
  '# the default certificate: the first line',
  `${certs.first}`,
  `${certs.api} [verify required ca-file ${ca.cert} alpn h2,http/1.1] api.example.com`,
  `${certs.legacy} [ssl-min-ver TLSv1.0] legacy.example.com`,
  `${certs.wild} *.example.com !secret.example.com`,
  '',
  `${certs.wild} [verify required ca-file ${ca.cert}] secure.example.com   # the wildcard certificate, with mTLS`,
  `${certs.wild} [no-tls-tickets] noticket.example.com`
].join('\n') + '\n'
let node: RunningNode
let port: number

before(async () => {
  fs.writeFileSync(list, LIST)
  let admin: number
  ;[port, admin] = await freePorts(2) as [number, number]
  node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--crt-list', list], { adminPort: admin })
})

after(async () => { await node?.stop() })

const CLIENT_CERT = ['-cert', client.cert, '-key', client.key]
/** TLS 1.0 needs security level 0 on the client (SHA-1, MD5 in its PRF). */
const TLS1 = ['-tls1', '-cipher', 'DEFAULT:@SECLEVEL=0']

function cn (result: SClientResult): string | undefined {
  return /CN ?= ?([^\s,]+)/.exec(result.subject ?? '')?.[1]
}

function alpn (result: SClientResult): string {
  return /ALPN protocol: (\S+)/.exec(result.output)?.[1] ?? (result.output.includes('No ALPN negotiated') ? 'none' : 'unknown')
}

/** A TLS 1.2 handshake: its failure is seen by the client (TLS 1.3 reports the server's client certificate check only after). */
async function tls12 (p: number, servername: string | undefined, extra: string[] = []): Promise<SClientResult> {
  return await sClient({ port: p, ...(servername !== undefined ? { servername } : {}), tls: '1.2', extra })
}

/**
 * Whether a client without a certificate was refused: HAProxy fails the TLS 1.2 handshake; the
 * node checks the certificate once the handshake is done (client-auth.ts) and closes, counted.
 */
type Refusal = (run: () => Promise<SClientResult>) => Promise<boolean>

const haproxyRefuses: Refusal = async (run) => {
  const result = await run()
  // s_client still prints "New, TLSv1.2" when the server's alert ends the handshake.
  return result.protocol === undefined || /alert handshake failure|alert certificate required/.test(result.output)
}

const nodeRefuses: Refusal = async (run) => {
  const missing = async (): Promise<number> => await node.metric('tlsfleet_client_certificate_rejections_total', { reason: 'missing' })
  const before = await missing()
  const result = await run()
  if (result.protocol === undefined) return true
  try {
    await eventually(async () => await missing() === before + 1, 3000, 'the refusal counted')
    return true
  } catch {
    return false
  }
}

/** What a port serves, checked identically on the node and on HAProxy. */
async function checkBehaviour (p: number, who: string, refuses: Refusal): Promise<void> {
  // api.example.com: its own certificate, a client certificate required (of the line's CA), h2 offered.
  assert.equal(await refuses(async () => await tls12(p, 'api.example.com', ['-alpn', 'h2'])), true, `${who}: api.example.com served without a client certificate`)
  const withCert = await tls12(p, 'api.example.com', ['-alpn', 'h2', ...CLIENT_CERT])
  assert.equal(withCert.protocol, 'TLSv1.2', `${who}: api.example.com with a client certificate:\n${withCert.output}`)
  assert.equal(cn(withCert), 'api.example.com', who)
  assert.equal(alpn(withCert), 'h2', `${who}: api.example.com negotiates h2`)
  assert.match(withCert.output, /Acceptable client certificate CA names\n\/?CN ?= ?crt-list clients CA/, `${who}: the line's CA is named`)
  // www.example.com: the wildcard line, no settings: no client certificate asked, no ALPN.
  const www = await tls12(p, 'www.example.com', ['-alpn', 'h2'])
  assert.equal(www.protocol, 'TLSv1.2', `${who}: www.example.com:\n${www.output}`)
  assert.equal(cn(www), '*.example.com', who)
  assert.equal(alpn(www), 'none', `${who}: www.example.com offers no ALPN`)
  assert.doesNotMatch(www.output, /Acceptable client certificate CA names/, `${who}: www.example.com asks for no client certificate`)
  // !secret.example.com: excluded from the wildcard line: the default certificate.
  assert.equal(cn(await tls12(p, 'secret.example.com')), 'first.test', who)
  assert.equal(cn(await tls12(p, undefined)), 'first.test', `${who}: no SNI: the first line`)
  assert.equal(cn(await tls12(p, 'unknown.test')), 'first.test', who)
  // secure.example.com: the wildcard certificate again, with its line's mTLS.
  assert.equal(await refuses(async () => await tls12(p, 'secure.example.com')), true, `${who}: secure.example.com served without a client certificate`)
  const secure = await tls12(p, 'secure.example.com', CLIENT_CERT)
  assert.equal(cn(secure), '*.example.com', who)
  assert.equal(secure.protocol, 'TLSv1.2', `${who}: secure.example.com with a client certificate:\n${secure.output}`)
}

test('each crt-list line\'s settings apply to its names only: mTLS and h2 on api, the wildcard plain, !secret to the default', async () => {
  await checkBehaviour(port, 'tlsfleet', nodeRefuses)
  // h2 on a line, no PROXY header to the backend: warned about as --alpn is, naming the line.
  const warning = node.logs.find((l) => String(l.msg).startsWith('alpn h2,http/1.1: no PROXY header goes to the backend')) as { line?: string } | undefined
  assert.match(warning?.line ?? '', /--crt-list ".*list\.txt" line 3/)
})

test('no-tls-tickets on a line: its TLS 1.2 clients get no ticket and resume by session ID; the other lines issue tickets', async () => {
  const plain = await tls12(port, 'www.example.com')
  assert.match(plain.output, /TLS session ticket:/, plain.output)
  const sess = path.join(dir, 'noticket.sess')
  const made = await sClient({ port, servername: 'noticket.example.com', tls: '1.2', sessOut: sess })
  assert.equal(made.protocol, 'TLSv1.2', made.output)
  assert.doesNotMatch(made.output, /TLS session ticket:/, 'a ticket was issued on the no-tls-tickets line')
  const again = await sClient({ port, servername: 'noticket.example.com', tls: '1.2', sessIn: sess })
  assert.equal(again.reused, true, `no resumption by session ID:\n${again.output}`)
})

test('ssl-min-ver TLSv1.0 on the legacy line only: a TLS 1.0 client gets legacy.example.com, not the other names', async () => {
  const legacy = await sClient({ port, servername: 'legacy.example.com', extra: TLS1 })
  assert.equal(legacy.protocol, 'TLSv1.0', legacy.output)
  assert.equal(cn(legacy), 'legacy.example.com')
  for (const name of ['www.example.com', 'first.test']) {
    const refused = await sClient({ port, servername: name, extra: TLS1 })
    assert.equal(refused.protocol, undefined, `${name} took TLS 1.0:\n${refused.output}`)
  }
})

test('a session of a line without client certificates never resumes under a line of the same certificate that requires one', async () => {
  for (const version of ['1.2', '1.3'] as const) {
    const sess = path.join(dir, `www-${version}.sess`)
    const made = await sClient({ port, servername: 'www.example.com', tls: version, sessOut: sess })
    assert.equal(made.protocol, `TLSv${version}`, made.output)
    const again = await sClient({ port, servername: 'www.example.com', tls: version, sessIn: sess })
    assert.equal(again.reused, true, `TLS ${version}: the session resumes for its own line:\n${again.output}`)
    // Same certificate file, verify required: a full handshake, which asks for the certificate.
    const secure = await sClient({ port, servername: 'secure.example.com', tls: version, sessIn: sess, extra: CLIENT_CERT })
    assert.equal(secure.reused, false, `TLS ${version}: resumed across lines:\n${secure.output}`)
    assert.match(secure.output, /Acceptable client certificate CA names/, `TLS ${version}: the full handshake asked for a client certificate`)
    const without = await sClient({ port, servername: 'secure.example.com', tls: version, sessIn: sess })
    assert.equal(without.reused, false, `TLS ${version}: resumed under verify required without a certificate:\n${without.output}`)
  }
})

test('a ClientHello not read ahead starts on the default line\'s settings: a name of a line with other settings is refused, not served without them', async () => {
  // Spread over one record per byte: more than a worker reads ahead, so OpenSSL's SNI callback names the line.
  const fragmented = async (name: string): Promise<Buffer> => {
    const hello = await capturedClientHello(name, { maxVersion: 'TLSv1.2' })
    return byteRecords(hello)
  }
  const failures = async (): Promise<number> => await node.metric('tlsfleet_handshake_failures_total', { reason: 'tls_error' })
  const before = await failures()
  const api = await rawExchange(port, await fragmented('api.example.com'))
  assert.ok(!api.includes(Buffer.from('api.example.com')), `api.example.com's certificate was served without its line's client certificate request (${api.length} bytes back)`)
  await eventually(async () => await failures() > before, 5000, 'the refusal counted')
  // A name of a line with the default's settings (none) is served through the callback.
  const www = await rawExchange(port, await fragmented('www.example.com'))
  assert.ok(www.includes(Buffer.from('*.example.com')), `www.example.com was not served (${www.length} bytes back)`)
})


/** `haproxy -c` of a bind line with `crt-list FILE`: its output (the alerts when refused). */
function haproxyCheck (file: string): { valid: boolean; output: string } {
  const cfg = path.join(dir, 'haproxy-check.cfg')
  fs.writeFileSync(cfg, `${TCP_DEFAULTS}\nfrontend fe\n  bind 127.0.0.1:1 ssl crt-list ${file}\n  default_backend be\nbackend be\n  server s 127.0.0.1:9\n`)
  try {
    return { valid: true, output: execFileSync('haproxy', ['-c', '-f', cfg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) }
  } catch (err) {
    return { valid: false, output: String((err as { stderr?: string }).stderr ?? err) }
  }
}

test('the same crt-list file, loaded by a real HAProxy, is accepted and serves the same way', async (t) => {
  // All but the no-tls-tickets line, which HAProxy 2.6 refuses (next test).
  const shared = path.join(dir, 'shared.txt')
  fs.writeFileSync(shared, LIST.split('\n').filter((l) => !l.includes('no-tls-tickets')).join('\n'))
  const check = haproxyCheck(shared)
  assert.equal(check.valid, true, check.output)
  const haproxy = await startHaproxy(({ ports }) => `${TCP_DEFAULTS}\nfrontend fe\n  bind 127.0.0.1:${ports[0] as number} ssl crt-list ${shared}\n  default_backend be\nbackend be\n  server s 127.0.0.1:9\n`, { t, ports: 1 })
  await checkBehaviour(haproxy.ports[0] as number, 'haproxy', haproxyRefuses)
})

test('HAProxy 2.6 takes every keyword of the node in a crt-list but sigalgs and no-tls-tickets (as docs/operations.md says)', () => {
  const one = path.join(dir, 'one.txt')
  const keywords = ['alpn h2', 'ciphers ECDHE-RSA-AES128-GCM-SHA256', 'ciphersuites TLS_AES_128_GCM_SHA256', 'curves X25519:P-256', 'ssl-min-ver TLSv1.0', 'ssl-max-ver TLSv1.2', `verify optional ca-file ${ca.cert} crl-file ${ca.crl()}`, 'verify none']
  for (const keyword of keywords) {
    fs.writeFileSync(one, `${certs.api} [${keyword}] api.example.com\n`)
    const check = haproxyCheck(one)
    assert.equal(check.valid, true, `${keyword}: ${check.output}`)
  }
  for (const keyword of ['sigalgs RSA-PSS+SHA256', 'no-tls-tickets']) {
    fs.writeFileSync(one, `${certs.api} [${keyword}] api.example.com\n`)
    const check = haproxyCheck(one)
    assert.equal(check.valid, false, `HAProxy now takes ${keyword} in a crt-list: update docs/operations.md`)
    assert.match(check.output, new RegExp(`unknown ssl keyword ${keyword.split(' ')[0] as string}`))
  }
})

test('SNI filters pick the same certificate on the node as on HAProxy: ! passes a name to the next wildcard line; a line with only ! filters serves no name', async (t) => {
  const two = {
    w1: makeCertificate(dir, 'w1', ['w1.example.org', '*.example.org']),
    w2: makeCertificate(dir, 'w2', ['w2.example.org', '*.example.org']),
    neg: makeCertificate(dir, 'neg', ['neg.example.net'])
  }
  const filters = path.join(dir, 'filters.txt')
  fs.writeFileSync(filters, `${certs.first}\n${two.w1} *.example.org !secret.example.org\n${two.w2} *.example.org\n${two.neg} !foo.example.org\n${two.neg} [alpn h2] exact.example.org\n`)
  const [p, admin] = await freePorts(2) as [number, number]
  const filtered = await startNode(['--workers', '1', '--listen', `127.0.0.1:${p}`, '--crt-list', filters], { adminPort: admin })
  t.after(async () => { await filtered.stop() })
  const haproxy = await startHaproxy(({ ports }) => `${TCP_DEFAULTS}\nfrontend fe\n  bind 127.0.0.1:${ports[0] as number} ssl crt-list ${filters}\n  default_backend be\nbackend be\n  server s 127.0.0.1:9\n`, { t, ports: 1 })
  const expected: Record<string, string> = {
    'www.example.org': 'w1.example.org',
    'secret.example.org': 'w2.example.org',
    'neg.example.net': 'first.test',
    'exact.example.org': 'neg.example.net',
    'example.org': 'first.test'
  }
  for (const [name, want] of Object.entries(expected)) {
    for (const [who, at] of [['tlsfleet', p], ['haproxy', haproxy.ports[0] as number]] as const) {
      assert.equal(cn(await tls12(at, name)), want, `${who}: ${name}`)
    }
  }
})

test('SIGHUP re-reads the list: a new line serves with its settings; a refused list keeps the current one, naming the line', async () => {
  fs.writeFileSync(list, LIST + `${certs.wild} [alpn h2] h2.example.com\n`)
  const reloads = (): number => node.logs.filter((l) => l.msg === 'certificates reloaded' && l.name === 'worker').length
  const before = reloads()
  node.process.kill('SIGHUP')
  await node.waitForLog(() => reloads() > before, 10_000)
  assert.equal(alpn(await tls12(port, 'h2.example.com', ['-alpn', 'h2'])), 'h2')
  assert.equal(alpn(await tls12(port, 'www.example.com', ['-alpn', 'h2'])), 'none')

  fs.writeFileSync(list, LIST + `${certs.wild} [alpn h2 npn h2] npn.example.com\n`)
  node.process.kill('SIGHUP')
  await node.waitForLog(() => node.logs.some((l) => l.msg === 'certificate reload refused; keeping the current certificates'), 10_000)
  const refused = node.logs.find((l) => l.msg === 'certificate reload refused; keeping the current certificates') as { err?: { message?: string } }
  assert.match(refused.err?.message ?? '', /--crt-list ".*list\.txt": line 9: keyword "npn" is not supported/)
  assert.equal(alpn(await tls12(port, 'h2.example.com', ['-alpn', 'h2'])), 'h2', 'the current material stays')
  assert.equal(reloads(), before + 1)
})

test('a refused crt-list refuses the start, naming the file, the line and the keyword (given as a flag, TLSFLEET_CRT_LIST or a YAML key)', async () => {
  const bad = path.join(dir, 'bad.txt')
  fs.writeFileSync(bad, `${certs.first}\n# comment\n${certs.api} [verify required ca-file ${ca.cert} strict-sni] api.example.com\n`)
  const [p, admin] = await freePorts(2) as [number, number]
  const result = await runNodeToExit(['--workers', '1', '--listen', `127.0.0.1:${p}`, '--admin-listen', `127.0.0.1:${admin}`, '--crt-list', bad])
  assert.equal(result.code, 2, result.stderr)
  assert.match(result.stderr, /--crt-list ".*bad\.txt": line 3: keyword "strict-sni" is not supported .*\(TLSFLEET_ERR_CERTIFICATE\)/)
  const env = await runNodeToExit(['--workers', '1', '--listen', `127.0.0.1:${p}`, '--admin-listen', `127.0.0.1:${admin}`], { env: { ...process.env, TLSFLEET_CRT_LIST: bad } })
  assert.equal(env.code, 2, env.stderr)
  assert.match(env.stderr, /TLSFLEET_CRT_LIST ".*bad\.txt": line 3: keyword "strict-sni"/)
  const yaml = path.join(dir, 'node.yaml')
  fs.writeFileSync(yaml, `crt-list:\n  - ${bad}\n`)
  const fromYaml = await runNodeToExit(['--workers', '1', '--listen', `127.0.0.1:${p}`, '--admin-listen', `127.0.0.1:${admin}`, '--config', yaml])
  assert.equal(fromYaml.code, 2, fromYaml.stderr)
  assert.match(fromYaml.stderr, /key "crt-list" ".*bad\.txt": line 3: keyword "strict-sni"/)
})
