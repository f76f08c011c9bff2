import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import {
  AdminClientError, AdminRequestError, AdminTokenError, CertificateError, ConfigConflictError, ConfigError, ERROR_CODES, FarmSecretError,
  HaproxyRuntimeError, LabError, ListenError, PrivilegeError, SyncStateError, TerminatorError, TlsfleetError, UsageError, WorkerStartError, EXIT_CONFIG, EXIT_ENVIRONMENT, EXIT_FAILURE
} from '../../src/errors.js'
import { sectionLines, tableRows, where } from '../helpers/docs.js'
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

/** One error of each class, as raised (ListenError by errno; AdminClientError with both its statuses). */
function oneOfEach (): TlsfleetError[] {
  const errno = (code: string): unknown => Object.assign(new Error(code), { code })
  return [
    new ConfigError(['x']), new ConfigConflictError('x'), new UsageError('x'), new CertificateError('f', 'x'), new FarmSecretError('f', 'x'),
    new AdminTokenError('x'), new ListenError('--listen', 'a', errno('EADDRINUSE')), new ListenError('--listen', 'a', errno('EADDRNOTAVAIL')),
    new ListenError('--listen', 'a', errno('EACCES')), new ListenError('--listen', 'a', errno('EPERM')), new ListenError('--listen', 'a', errno('EMFILE')),
    new PrivilegeError('x'), new WorkerStartError('x'), new HaproxyRuntimeError('c', 'x'), new AdminRequestError(400, 'Bad Request', 'x'),
    new AdminClientError('x'), new AdminClientError('x', 2), new LabError('x'), new TerminatorError('x'), new SyncStateError('f', new Error('x'))
  ]
}

test('docs/operations.md error table: each code with the exit status the CLI uses for it, and no code the code lacks', () => {
  const rows = tableRows(sectionLines('docs/operations.md', '## When tlsfleet refuses or fails'), 'code')
  const documented = new Map(rows.map(({ cells, at }) => [(cells[0] ?? '').replace(/`/g, ''), { exit: cells[1] ?? '', at }]))
  assert.deepEqual([...documented.keys()].filter((c) => !(ERROR_CODES as readonly string[]).includes(c)), [], 'documented codes src/errors.ts does not have')
  const raised = oneOfEach()
  assert.deepEqual([...new Set(raised.map((e) => e.code))].sort(), [...ERROR_CODES].sort(), 'oneOfEach() covers every code')
  const statuses = new Map<string, Set<number>>()
  for (const err of raised) statuses.set(err.code, new Set([...(statuses.get(err.code) ?? []), err.exitCode]))
  const problems: string[] = []
  for (const [code, exits] of statuses) {
    const row = documented.get(code)
    if (row === undefined) { problems.push(`${code}: no row`); continue }
    // An admin API refusal is an HTTP answer, never a process's exit: "-".
    const expected = code === 'TLSFLEET_ERR_ADMIN_REQUEST' ? '-' : [...exits].sort().join(' or ')
    if (row.exit !== expected) problems.push(`${where(row.at)} ${code}: exit ${JSON.stringify(row.exit)} documented, the code exits ${expected}`)
  }
  assert.deepEqual(problems, [])
})

test('docs/operations.md exit table: the statuses src/errors.ts defines, and no other', () => {
  const rows = tableRows(sectionLines('docs/operations.md', '## When tlsfleet refuses or fails'), 'exit')
  assert.deepEqual(rows.map(({ cells }) => Number(cells[0])).sort(), [0, EXIT_FAILURE, EXIT_CONFIG, EXIT_ENVIRONMENT].sort())
})

test('every code raised in src/ is in ERROR_CODES (so the docs check above covers it)', () => {
  const source = fs.readFileSync(path.join(REPO_ROOT, 'src', 'errors.ts'), 'utf8')
  const raised = new Set([...source.matchAll(/'(TLSFLEET_ERR_[A-Z_]+)'/g)].map((m) => m[1]))
  assert.deepEqual([...raised].sort(), [...ERROR_CODES].sort())
})
