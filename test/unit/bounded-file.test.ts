import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { test } from 'node:test'
import { AdminTokenError, ConfigError, FarmSecretError } from '../../src/errors.js'
import { loadConfig } from '../../src/config/load.js'
import { readTokenFile } from '../../src/admin/admin-auth.js'
import { loadFarmSecrets } from '../../src/sync/farm-secret.js'
import { BoundedFileError, MAX_SECRET_BYTES, readBoundedFile, sizeText } from '../../src/util/bounded-file.js'
import { tempDir } from '../helpers/certs.js'

const dir = tempDir()
const DIST_SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src')

/**
 * Run `call` (JS, with the module `module` of src/ imported as `m`) in a child process bounded
 * at 10 s, and return what it threw as "Class CODE: message". In a child because without the
 * bounded reads a FIFO blocks open() (no test timeout can end a synchronous call) and
 * /dev/zero fills memory: a regression then fails here instead of hanging the suite.
 */
function refusalInChild (module: string, call: string): string {
  const url = pathToFileURL(path.join(DIST_SRC, module)).href
  const script = `const m = await import(${JSON.stringify(url)}); try { ${call}; process.stdout.write('no refusal') } catch (err) { process.stdout.write(err.constructor.name + ' ' + (err.code ?? '') + ': ' + err.message) }`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 })
  assert.equal(r.signal, null, `${call}: hung (killed after 10 s)`)
  return r.stdout
}
const limit = (maxBytes: number): { maxBytes: number; what: string } => ({ maxBytes, what: 'a test file' })

/** A FIFO nobody writes to: opening it for reading without O_NONBLOCK would block forever. */
function fifo (name: string): string {
  const file = path.join(dir, name)
  execFileSync('mkfifo', [file])
  return file
}

/** A sparse file of `bytes` (no disk used): over any cap, and slow to read whole if it were. */
function sparse (name: string, bytes: number, mode = 0o600): string {
  const file = path.join(dir, name)
  fs.writeFileSync(file, '', { mode })
  fs.truncateSync(file, bytes)
  return file
}

test('a regular file is read whole, as bytes; one at the cap exactly too', () => {
  const file = path.join(dir, 'plain.txt')
  fs.writeFileSync(file, 'héllo\n')
  assert.deepEqual(readBoundedFile(file, limit(1024)), Buffer.from('héllo\n'))
  assert.equal(readBoundedFile(file, limit(7)).length, 7)
  const big = path.join(dir, 'big.bin')
  fs.writeFileSync(big, Buffer.alloc(200_000, 7))
  assert.equal(readBoundedFile(big, limit(200_000)).length, 200_000)
  fs.writeFileSync(path.join(dir, 'empty'), '')
  assert.equal(readBoundedFile(path.join(dir, 'empty'), limit(10)).length, 0)
})

test('a FIFO is refused at once, without blocking in open() (run in a child bounded at 10 s, so a hang fails)', () => {
  const file = fifo('pipe')
  const started = Date.now()
  assert.equal(refusalInChild('util/bounded-file.js', `m.readBoundedFile(${JSON.stringify(file)}, { maxBytes: 1024, what: 'x' })`), 'BoundedFileError : not a regular file (a FIFO)')
  assert.ok(Date.now() - started < 5_000)
})

test('/dev/zero, /dev/urandom and a directory are refused, saying what they are', () => {
  assert.throws(() => readBoundedFile('/dev/zero', limit(1024)), (err: unknown) => err instanceof BoundedFileError && err.message === 'not a regular file (a character device)')
  assert.throws(() => readBoundedFile('/dev/urandom', limit(1024)), /not a regular file \(a character device\)/)
  assert.throws(() => readBoundedFile(dir, limit(1024)), (err: unknown) => err instanceof BoundedFileError && err.message === 'not a regular file (a directory)')
  // OS errors stay as they are, for the caller's "cannot read".
  assert.throws(() => readBoundedFile(path.join(dir, 'missing'), limit(1024)), (err: unknown) => !(err instanceof BoundedFileError) && /ENOENT/.test((err as Error).message))
})

test('a file over the cap is refused from its size, without being read (a sparse 64 GiB file takes no time)', () => {
  const file = sparse('huge', 64 * 1024 ** 3)
  const started = Date.now()
  assert.throws(() => readBoundedFile(file, limit(1024 * 1024)), (err: unknown) => err instanceof BoundedFileError && err.message === `${64 * 1024 ** 3} bytes, over the 1 MiB allowed; a test file is never that large (is this the right file?)`)
  assert.ok(Date.now() - started < 1_000)
  assert.throws(() => readBoundedFile(path.join(dir, 'big.bin'), limit(199_999)), /200000 bytes, over the 199999 bytes allowed/)
})

test('a file with more bytes than its size said (one that grows while it is read, a /proc file) stops at the cap', () => {
  // /proc files are regular with st_size 0: the size check passes, the bounded reads stop.
  assert.throws(() => readBoundedFile('/proc/self/maps', limit(16)), (err: unknown) => err instanceof BoundedFileError && /^grew past 16 bytes while it was read/.test(err.message))
  assert.ok(readBoundedFile('/proc/self/maps', limit(1024 * 1024)).length > 16)
})

test('sizes read as operators write them', () => {
  assert.equal(sizeText(1024 * 1024), '1 MiB')
  assert.equal(sizeText(16 * 1024), '16 KiB')
  assert.equal(sizeText(1000), '1000 bytes')
})

test('each caller keeps its own error class, option and file in the refusal', () => {
  const pipe = fifo('caller-pipe')
  const p = JSON.stringify(pipe)
  assert.equal(refusalInChild('config/load.js', `m.loadConfig({ file: ${p}, env: {} })`), `ConfigError TLSFLEET_ERR_CONFIG: --config "${pipe}": not a regular file (a FIFO)`)
  assert.equal(refusalInChild('tls/pem-files.js', `m.readPemFile('--crl', ${p})`), `ConfigError TLSFLEET_ERR_CONFIG: --crl "${pipe}": not a regular file (a FIFO)`)
  assert.equal(refusalInChild('tls/pem-files.js', `m.readCaCertificates('--client-ca', '/dev/zero')`), 'ConfigError TLSFLEET_ERR_CONFIG: --client-ca "/dev/zero": not a regular file (a character device)')
  assert.equal(refusalInChild('tls/certificates.js', "m.loadCertificateFile('/dev/zero')"), 'CertificateError TLSFLEET_ERR_CERTIFICATE: certificate "/dev/zero": not a regular file (a character device)')
  assert.equal(refusalInChild('admin/admin-auth.js', `m.readTokenFile(${p})`), `AdminTokenError TLSFLEET_ERR_ADMIN_TOKEN: token file "${pipe}": not a regular file (a FIFO)`)
  const secret = sparse('farm.key', 3 * 1024 ** 3)
  assert.throws(() => loadFarmSecrets([secret]), (err: unknown) => err instanceof FarmSecretError && err.code === 'TLSFLEET_ERR_FARM_SECRET' && err.message === `--sync-secret-file "${secret}": ${3 * 1024 ** 3} bytes, over the ${sizeText(MAX_SECRET_BYTES)} allowed; a farm secret is never that large (is this the right file?)`)
  // The mode is still checked first (on the descriptor), as before.
  const loose = sparse('loose.key', 100, 0o644)
  fs.chmodSync(loose, 0o644)
  assert.throws(() => loadFarmSecrets([loose]), /readable by group or others \(mode 644\); run chmod 600 on it/)
  const token = sparse('admin.token', 2 * 1024 ** 3)
  assert.throws(() => readTokenFile(token, { checkMode: true }), (err: unknown) => err instanceof AdminTokenError && /^token file ".*admin\.token": 2147483648 bytes, over the 16 KiB allowed/.test(err.message))
})

test('a config file that is not UTF-8 is refused naming the file and the line (a Latin-1 path would name another file)', () => {
  const file = path.join(dir, 'latin1.yaml')
  fs.writeFileSync(file, Buffer.concat([Buffer.from('workers: 1\ncert: /etc/tls/caf'), Buffer.from([0xe9]), Buffer.from('.pem\n')]))
  assert.throws(() => loadConfig({ file, env: {} }), (err: unknown) => err instanceof ConfigError && err.message === `--config "${file}": not valid UTF-8 (line 2, byte 29); save it as UTF-8 (a path in Latin-1 would name another file)`)
  const good = path.join(dir, 'utf8.yaml')
  fs.writeFileSync(good, '\ufeffworkers: 1\n# café\n')
  assert.equal(loadConfig({ file: good, env: {} }).workers, 1)
})
