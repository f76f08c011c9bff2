import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { generate } from 'selfsigned'
import { loadTlsMaterial } from '../../src/tls/tls-material.js'
import type { Logger } from '../../src/util/logger.js'

async function certificateFile (dir: string, name: string, notBefore: Date, notAfter: Date): Promise<string> {
  const pems = await generate([{ name: 'commonName', value: `${name}.test` }], {
    keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate: notBefore, notAfterDate: notAfter,
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: `${name}.test` }] }]
  } as Parameters<typeof generate>[1])
  const file = path.join(dir, `${name}.pem`)
  fs.writeFileSync(file, `${pems.private}\n${pems.cert}\n`, { mode: 0o600 })
  return file
}

test('an expired certificate loads (served all the same) with a warning naming the file, at every load', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-material-'))
  const day = 86_400_000
  const expired = await certificateFile(dir, 'old', new Date(Date.now() - 3 * day), new Date(Date.now() - day))
  const valid = await certificateFile(dir, 'new', new Date(Date.now() - day), new Date(Date.now() + day))
  const warnings: Array<{ fields: Record<string, unknown>; msg: string }> = []
  const log = { warn: (fields: Record<string, unknown>, msg: string) => warnings.push({ fields, msg }), error: () => {}, info: () => {} } as unknown as Logger
  const { material } = await loadTlsMaterial({ cert: [valid, expired], certDir: '', stateDir: dir, clientCa: '', crl: '' }, log)
  assert.equal(material.certificates.length, 2)
  assert.equal(warnings.length, 1, JSON.stringify(warnings))
  assert.equal(warnings[0]?.msg, 'certificate expired: clients that verify it refuse it; renew it (then SIGHUP)')
  assert.equal(warnings[0]?.fields.file, expired)
  fs.rmSync(dir, { recursive: true, force: true })
})

test('a chain over the 100 KiB OpenSSL clients take loads with a warning naming the file and its size; a usual chain does not', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-material-'))
  const day = 86_400_000
  const usual = await certificateFile(dir, 'usual', new Date(Date.now() - day), new Date(Date.now() + day))
  const text = fs.readFileSync(usual, 'utf8')
  const leaf = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(text)?.[0] ?? ''
  const huge = path.join(dir, 'huge.pem')
  fs.writeFileSync(huge, text + leaf.repeat(Math.ceil(100 * 1024 / leaf.length) * 2), { mode: 0o600 })
  const warnings: Array<{ fields: Record<string, unknown>; msg: string }> = []
  const log = { warn: (fields: Record<string, unknown>, msg: string) => warnings.push({ fields, msg }), error: () => {}, info: () => {} } as unknown as Logger
  await loadTlsMaterial({ cert: [usual, huge], certDir: '', stateDir: dir, clientCa: '', crl: '' }, log)
  assert.deepEqual(warnings.map((w) => [w.fields.file, w.fields.limit]), [[huge, 102400]])
  assert.ok((warnings[0]?.fields.bytes as number) > 102400)
  assert.match(warnings[0]?.msg ?? '', /excessive message size/)
  fs.rmSync(dir, { recursive: true, force: true })
})

test('a --cert or --cert-dir key file open to group or others loads with one warning naming the file and mode, at every load', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-material-'))
  const day = 86_400_000
  const closed = await certificateFile(dir, 'closed', new Date(Date.now() - day), new Date(Date.now() + day))
  const loose = await certificateFile(dir, 'loose', new Date(Date.now() - day), new Date(Date.now() + day))
  fs.chmodSync(closed, 0o600)
  fs.chmodSync(loose, 0o644)
  const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-material-dir-'))
  fs.copyFileSync(loose, path.join(certDir, 'loose-too.pem'))
  fs.chmodSync(path.join(certDir, 'loose-too.pem'), 0o640)
  const warnings: Array<{ fields: Record<string, unknown>; msg: string }> = []
  const log = { warn: (fields: Record<string, unknown>, msg: string) => warnings.push({ fields, msg }), error: () => {}, info: () => {} } as unknown as Logger
  for (let load = 0; load < 2; load++) await loadTlsMaterial({ cert: [closed, loose], certDir, stateDir: dir, clientCa: '', crl: '' }, log)
  const loosenings = warnings.filter((w) => /private key file open to group or others/.test(w.msg)).map((w) => [w.fields.option, w.fields.file, w.fields.mode])
  const once = [['--cert', loose, '0644'], ['--cert-dir', path.join(certDir, 'loose-too.pem'), '0640']]
  assert.deepEqual(loosenings, [...once, ...once])
  fs.rmSync(dir, { recursive: true, force: true })
  fs.rmSync(certDir, { recursive: true, force: true })
})
