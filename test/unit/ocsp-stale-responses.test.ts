import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { Registry } from 'prom-client'
import { OcspStapler } from '../../src/ocsp/ocsp-stapler.js'
import { certificateKey } from '../../src/ocsp/staple-store.js'
import { loadCertificateFile, type CertificateBundle } from '../../src/tls/certificates.js'
import { createLogger } from '../../src/util/logger.js'
import { tempDir } from '../helpers/certs.js'
import { TestCa } from '../helpers/pki.js'

/** The name the node keeps a certificate's response under: the SHA-256 of its leaf. */
function responseName (bundle: CertificateBundle): string {
  return `${certificateKey(new crypto.X509Certificate(bundle.cert).raw)}.der`
}

test('--ocsp-dir: responses kept for certificates no longer served are removed once idle; nothing else is', async () => {
  const dir = tempDir()
  const ca = new TestCa(path.join(dir, 'ca'))
  const issue = (name: string): CertificateBundle => loadCertificateFile(ca.issue(name, { names: [`${name}.test`], usage: 'server', ocspUrl: 'http://127.0.0.1:9/', keyType: 'ecdsa' }).bundle)
  const served = issue('served')
  const renewed = issue('renewed')
  const ocsp = path.join(dir, 'ocsp')
  fs.mkdirSync(ocsp)
  const old = new Date(Date.now() - 3 * 60_000) // idle longer than 2 refresh intervals (2 x 60 s)
  const put = (name: string, age = old): void => {
    fs.writeFileSync(path.join(ocsp, name), 'response')
    fs.utimesSync(path.join(ocsp, name), age, age)
  }
  const gone = 'a'.repeat(64) + '.der'
  const recent = 'b'.repeat(64) + '.der'
  put(responseName(served))
  put(gone) // a certificate served before the restart, idle since
  put(recent, new Date()) // maybe another node's, sharing the directory: written lately
  put('notes.txt')
  put('C'.repeat(64) + '.der') // not the node's naming (it writes lowercase hex)
  put('abc.der')
  put(`.${'d'.repeat(64)}.der.0123456789abcdef.tmp`)
  fs.symlinkSync('/etc/hostname', path.join(ocsp, 'e'.repeat(64) + '.der'))
  fs.mkdirSync(path.join(ocsp, 'f'.repeat(64) + '.der'))
  const listing = (): string[] => fs.readdirSync(ocsp).sort()
  const stapler = new OcspStapler({ dir: ocsp, refreshIntervalMs: 60_000, onChange: () => {}, registry: new Registry(), log: createLogger({ level: 'silent', format: 'json' }) })

  await stapler.setCertificates([served])
  const others = ['notes.txt', 'C'.repeat(64) + '.der', 'abc.der', `.${'d'.repeat(64)}.der.0123456789abcdef.tmp`, 'e'.repeat(64) + '.der', 'f'.repeat(64) + '.der']
  assert.deepEqual(listing(), [responseName(served), recent, ...others].sort())

  // A renewal (SIGHUP): the replaced certificate's response goes, as it has been idle.
  await stapler.setCertificates([renewed])
  assert.deepEqual(listing(), [recent, ...others].sort())
  assert.equal(fs.readlinkSync(path.join(ocsp, 'e'.repeat(64) + '.der')), '/etc/hostname')
  stapler.stop()
})
