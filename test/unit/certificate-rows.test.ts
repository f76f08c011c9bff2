import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { CertificateBody } from '../../src/admin/schemas.js'
import { certificateAttention } from '../../src/admin/certificate-attention.js'
import { certificateRows } from '../../src/cli/status-command.js'

/** As the node's certificate view makes them: `attention` from the one rule. */
const cert = (name: string, expiresInDays: number, ocsp?: CertificateBody['ocsp']): CertificateBody => ({
  file: `/etc/tls/${name}.pem`, names: [name], keyType: 'rsa', notAfter: '2027-03-01T00:00:00.000Z', expiresInDays, ...(ocsp !== undefined ? { ocsp } : {}),
  attention: certificateAttention(expiresInDays, ocsp)
})

test('a certificate needs the operator when expired, within 14 days of its end, revoked or unstapled; a good one does not', () => {
  assert.deepEqual(certificateAttention(80, { status: 'good' }), [], 'good')
  assert.deepEqual(certificateAttention(80, undefined), [], 'no --ocsp-dir: no staple expected')
  assert.deepEqual(certificateAttention(14, { status: 'good' }), [], '14 days left: not yet')
  assert.deepEqual(certificateAttention(13, { status: 'good' }), ['expiring'])
  assert.deepEqual(certificateAttention(0, undefined), ['expiring'], 'its last day')
  assert.deepEqual(certificateAttention(-1, { status: 'good' }), ['expired'])
  assert.deepEqual(certificateAttention(80, { status: 'none', reason: 'no response fetched yet' }), ['unstapled'])
  assert.deepEqual(certificateAttention(80, { status: 'revoked' }), ['revoked'])
  assert.deepEqual(certificateAttention(-2, { status: 'revoked' }), ['expired', 'revoked'], 'every reason, for status to say each')
})

test('tlsfleet status names the next certificate to expire, and each one that needs the operator', () => {
  const rows = certificateRows({
    terminator: 'tlsfleet',
    ocspStapling: true,
    certificates: [
      cert('a.test', 80, { status: 'good', thisUpdate: '2026-12-04T00:00:00.000Z' }),
      cert('b.test', -2, { status: 'revoked' }),
      cert('c.test', 13, { status: 'none', reason: 'last fetch failed: http://ocsp.test/ answered HTTP 500' })
    ]
  }).map(([k, v]) => `${k}|${v}`)
  assert.deepEqual(rows, [
    'certificates|3 served, next to expire b.test (/etc/tls/b.test.pem) on 2027-03-01',
    '|warning: b.test (/etc/tls/b.test.pem) EXPIRED 2 day(s) ago',
    '|warning: c.test (/etc/tls/c.test.pem) expires in 13 day(s)',
    'OCSP|2 of 3 stapled',
    '|warning: b.test (/etc/tls/b.test.pem) is REVOKED (its responder says so; replace it)',
    '|c.test (/etc/tls/c.test.pem): no staple (last fetch failed: http://ocsp.test/ answered HTTP 500)'
  ])
})

test('tlsfleet status: no OCSP row without stapling; an older node or HAProxy terminating say so in one row', () => {
  assert.deepEqual(certificateRows({ terminator: 'tlsfleet', ocspStapling: false, certificates: [cert('a.test', 80)] }),
    [['certificates', '1 served, next to expire a.test (/etc/tls/a.test.pem) on 2027-03-01']])
  assert.deepEqual(certificateRows(new Error('HTTP 404: no route GET /v1/certificates')), [['certificates', 'unknown (HTTP 404: no route GET /v1/certificates)']])
  assert.deepEqual(certificateRows({ terminator: 'haproxy', ocspStapling: false, certificates: [], note: 'the local HAProxy serves its own certificates' }),
    [['certificates', 'the local HAProxy serves its own certificates']])
})

test('tlsfleet status of a node older than `attention`: the same warnings, by the same rule', () => {
  const old = (c: CertificateBody): CertificateBody => { const { attention: _, ...rest } = c; return rest as CertificateBody }
  const certificates = [cert('a.test', 80, { status: 'good' }), cert('b.test', -2, { status: 'revoked' }), cert('c.test', 13, { status: 'none', reason: 'no response fetched yet' })]
  const body = { terminator: 'tlsfleet' as const, ocspStapling: true, certificates }
  assert.deepEqual(certificateRows({ ...body, certificates: certificates.map(old) }), certificateRows(body))
  assert.equal(certificateRows(body).length, 6)
})
