import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { Registry } from 'prom-client'
import { OcspStapler } from '../../src/ocsp/ocsp-stapler.js'
import { STALE_TEMP_MS } from '../../src/ocsp/stale-responses.js'
import { certificateKey } from '../../src/ocsp/staple-store.js'
import { loadCertificateFile, type CertificateBundle } from '../../src/tls/certificates.js'
import { createLogger } from '../../src/util/logger.js'
import { atomicTempName } from '../../src/util/safe-files.js'
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

test('--ocsp-dir: temporary files a node left mid-write are removed once older than a write could take; others, and recent ones, stay', async () => {
  const dir = tempDir()
  const ca = new TestCa(path.join(dir, 'ca'))
  const served = loadCertificateFile(ca.issue('served', { names: ['served.test'], usage: 'server', ocspUrl: 'http://127.0.0.1:9/', keyType: 'ecdsa' }).bundle)
  const ocsp = path.join(dir, 'ocsp')
  fs.mkdirSync(ocsp)
  const old = new Date(Date.now() - STALE_TEMP_MS - 60_000)
  const put = (name: string, age = old): string => {
    fs.writeFileSync(path.join(ocsp, name), 'half a response')
    fs.utimesSync(path.join(ocsp, name), age, age)
    return name
  }
  // The name writeFileAtomically really writes a response under, left by a crash.
  const left = put(path.basename(atomicTempName(path.join(ocsp, responseName(served)))))
  const leftOther = put(`.${'a'.repeat(64)}.der.0123456789abcdef.tmp`) // another certificate's, as old
  const writing = put(`.${'b'.repeat(64)}.der.0123456789abcdef.tmp`, new Date()) // a write under way (maybe another node's)
  const foreign = [
    put('.notes.tmp'), put(`.${'c'.repeat(64)}.pem.0123456789abcdef.tmp`), put(`.${'D'.repeat(64)}.der.0123456789abcdef.tmp`), put(`${'e'.repeat(64)}.der.0123456789abcdef.tmp`)
  ]
  const linked = `.${'f'.repeat(64)}.der.0123456789abcdef.tmp`
  fs.symlinkSync('/etc/hostname', path.join(ocsp, linked))
  const listing = (): string[] => fs.readdirSync(ocsp).sort()
  const stapler = new OcspStapler({ dir: ocsp, refreshIntervalMs: 60_000, onChange: () => {}, registry: new Registry(), log: createLogger({ level: 'silent', format: 'json' }) })

  // At start (the first certificates): the old ones of the node's naming go.
  await stapler.setCertificates([served])
  assert.ok(!listing().includes(left) && !listing().includes(leftOther), listing().join('\n'))
  assert.deepEqual(listing(), [writing, ...foreign, linked].sort())
  // At the next sweep (a reload), one that has grown old since goes too.
  fs.utimesSync(path.join(ocsp, writing), old, old)
  await stapler.setCertificates([served])
  assert.deepEqual(listing(), [...foreign, linked].sort())
  stapler.stop()
})
