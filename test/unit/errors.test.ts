import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { ERROR_CODES, ListenError, TlsfleetError } from '../../src/errors.js'
import { REPO_ROOT } from '../helpers/node-process.js'

test('a listener error names the address and the option, by errno, and keeps the errno as cause', () => {
  const inUse = new ListenError('--admin-listen', '127.0.0.1:8445', Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' }))
  assert.ok(inUse instanceof TlsfleetError)
  assert.equal(inUse.code, 'TLSFLEET_ERR_ADDRESS_IN_USE')
  assert.equal(inUse.exitCode, 3)
  assert.equal(inUse.message, '127.0.0.1:8445 is already in use by another process: stop that process or give another --admin-listen')
  assert.equal((inUse.cause as { code: string }).code, 'EADDRINUSE')
  assert.equal(new ListenError('--listen', '10.9.9.9:443', { code: 'EADDRNOTAVAIL' }).code, 'TLSFLEET_ERR_ADDRESS_NOT_AVAILABLE')
  assert.equal(new ListenError('--listen', '0.0.0.0:443', { code: 'EACCES' }).code, 'TLSFLEET_ERR_LISTEN_DENIED')
  const other = new ListenError('--sync-listen', '127.0.0.1:1', new Error('something odd'))
  assert.equal(other.code, 'TLSFLEET_ERR_LISTEN')
  assert.match(other.message, /cannot listen on 127\.0\.0\.1:1 \(--sync-listen\): something odd/)
})

test('docs/operations.md lists every error code', () => {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'operations.md'), 'utf8')
  for (const code of ERROR_CODES) assert.match(doc, new RegExp(`\\| \`${code}\` \\|`), `${code} missing from docs/operations.md`)
})

test('every code raised in src/ is in ERROR_CODES (so the docs check above covers it)', () => {
  const source = fs.readFileSync(path.join(REPO_ROOT, 'src', 'errors.ts'), 'utf8')
  const raised = new Set([...source.matchAll(/'(TLSFLEET_ERR_[A-Z_]+)'/g)].map((m) => m[1]))
  assert.deepEqual([...raised].sort(), [...ERROR_CODES].sort())
})
