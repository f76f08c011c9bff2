import assert from 'node:assert/strict'
import path from 'node:path'
import { test } from 'node:test'
import { Registry } from 'prom-client'
import { OcspStapler } from '../../src/ocsp/ocsp-stapler.js'
import { loadCertificateFile } from '../../src/tls/certificates.js'
import { createLogger } from '../../src/util/logger.js'
import { tempDir } from '../helpers/certs.js'
import { TestCa } from '../helpers/pki.js'

test('two reloads in quick succession: the stapler follows the last one\'s certificates (interleaved, each removed what the other added)', async () => {
  const dir = tempDir()
  const ca = new TestCa(path.join(dir, 'ca'))
  const ocspUrl = 'http://127.0.0.1:9/'
  const issue = (name: string): ReturnType<typeof loadCertificateFile> => loadCertificateFile(ca.issue(name, { names: [`${name}.test`], usage: 'server', ocspUrl, keyType: 'ecdsa' }).bundle)
  const many = Array.from({ length: 12 }, (_, i) => issue(`m${i}`))
  const first = issue('b')
  const replaced = issue('b-new')
  const stapler = new OcspStapler({ dir: path.join(dir, 'ocsp'), refreshIntervalMs: 60_000, onChange: () => {}, registry: new Registry(), log: createLogger({ level: 'silent', format: 'json' }) })
  await stapler.setCertificates([first])
  // SIGHUP 1 adds many certificates; SIGHUP 2, before it is done, replaces b.
  await Promise.all([stapler.setCertificates([first, ...many]), stapler.setCertificates([replaced])])
  assert.deepEqual(stapler.followed(), [replaced.path])
})
