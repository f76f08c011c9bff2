import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import { readGeneratedToken } from '../../src/admin/admin-auth.js'
import { ConfigError, SyncStateError } from '../../src/errors.js'
import { prepareStateDir, stateDirAncestorProblems } from '../../src/node/state-dir.js'
import { ReplayGuard } from '../../src/sync/replay-guard.js'
import { ReplayState } from '../../src/sync/replay-state.js'
import { ensureSelfSignedCertificate } from '../../src/tls/self-signed.js'
import { createLogger } from '../../src/util/logger.js'
import { ANY_OWNER, openPlainFile, readPlainFile, trustedOwners, UnsafeFileError, writeFileAtomically } from '../../src/util/safe-files.js'
import { tempDir } from '../helpers/certs.js'

// The tests run as root (as the integration tests do); another uid owns the "foreign" files.
const OTHER_UID = 65534
const SECRET = 'root-only secret\n'
const silent = createLogger({ level: 'silent', format: 'json' })

/** A directory with a file only root may read, and the state dir beside it. */
function scene (): { dir: string; victim: string; state: string } {
  const dir = tempDir()
  const victim = path.join(dir, 'victim')
  fs.writeFileSync(victim, SECRET, { mode: 0o600 })
  const state = path.join(dir, 'state')
  fs.mkdirSync(state, { mode: 0o700 })
  return { dir, victim, state }
}

describe('safe files: existing files', () => {
  it('reads a plain file of a trusted owner; a missing one is undefined', () => {
    const { state } = scene()
    const file = path.join(state, 'plain')
    fs.writeFileSync(file, 'hello', { mode: 0o600 })
    assert.equal(readPlainFile(file, trustedOwners()), 'hello')
    assert.equal(readPlainFile(path.join(state, 'missing'), trustedOwners()), undefined)
  })

  it('refuses a symbolic link, even to a file it could read', () => {
    const { state, victim } = scene()
    const link = path.join(state, 'link')
    fs.symlinkSync(victim, link)
    assert.throws(() => readPlainFile(link, trustedOwners()), (err: unknown) => err instanceof UnsafeFileError && /symbolic link/.test(err.message))
    assert.throws(() => openPlainFile(link, 'write', ANY_OWNER), UnsafeFileError)
  })

  it('refuses a hard link (a second name of a file elsewhere)', () => {
    const { state, victim } = scene()
    const link = path.join(state, 'hard')
    fs.linkSync(victim, link)
    assert.throws(() => readPlainFile(link, ANY_OWNER), (err: unknown) => err instanceof UnsafeFileError && /2 hard links/.test(err.message))
  })

  it('refuses a file of another owner, unless any owner is allowed; and what is not a regular file', () => {
    const { state } = scene()
    const file = path.join(state, 'foreign')
    fs.writeFileSync(file, 'x', { mode: 0o600 })
    fs.chownSync(file, OTHER_UID, OTHER_UID)
    assert.throws(() => readPlainFile(file, [0]), (err: unknown) => err instanceof UnsafeFileError && new RegExp(`owned by uid ${OTHER_UID}, not by root`).test(err.message))
    assert.equal(readPlainFile(file, [0, OTHER_UID]), 'x')
    assert.equal(readPlainFile(file, ANY_OWNER), 'x')
    assert.throws(() => readPlainFile(state, ANY_OWNER), /not a regular file/)
  })
})

describe('safe files: writing', () => {
  it('creates under a random name with O_EXCL: links at the old predictable names are left alone', () => {
    const { state, victim } = scene()
    const file = path.join(state, 'self-signed.pem')
    // What an attacker could plant when the name was FILE.PID.tmp.
    for (const name of [`${file}.${process.pid}.tmp`, path.join(state, `.self-signed.pem.${process.pid}.tmp`)]) fs.symlinkSync(victim, name)
    assert.equal(writeFileAtomically(file, 'new key\n', { mode: 0o600 }), true)
    assert.equal(fs.readFileSync(victim, 'utf8'), SECRET)
    assert.equal(fs.readFileSync(file, 'utf8'), 'new key\n')
    assert.equal(fs.statSync(file).mode & 0o777, 0o600)
    assert.deepEqual(fs.readdirSync(state).filter((n) => !n.includes(String(process.pid))).sort(), ['self-signed.pem'], 'no temporary file left')
  })

  it('replaces a link at the name itself, never the file it points to; keeps a file with replace false', () => {
    const { state, victim } = scene()
    const file = path.join(state, 'kept.der')
    fs.symlinkSync(victim, file)
    writeFileAtomically(file, 'response', { mode: 0o644 })
    assert.equal(fs.readFileSync(victim, 'utf8'), SECRET)
    assert.equal(fs.lstatSync(file).isFile(), true)
    assert.equal(fs.statSync(file).mode & 0o777, 0o644, 'the mode asked for, whatever the umask')
    assert.equal(writeFileAtomically(file, 'other', { mode: 0o600, replace: false }), false)
    assert.equal(fs.readFileSync(file, 'utf8'), 'response')
  })

  it('gives the new file the owner asked for', () => {
    const { state } = scene()
    const file = path.join(state, 'keys')
    writeFileAtomically(file, 'k', { mode: 0o600, owner: { uid: OTHER_UID, gid: OTHER_UID } })
    assert.equal(fs.statSync(file).uid, OTHER_UID)
  })
})

describe('state dir', () => {
  it('a missing one is made 0700; a private one passes', () => {
    const dir = path.join(tempDir(), 'a', 'state')
    prepareStateDir(dir)
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700)
    prepareStateDir(dir)
  })

  it('refuses one writable by group or others, or of another owner, naming the fix', () => {
    const open = path.join(tempDir(), 'open')
    fs.mkdirSync(open)
    fs.chmodSync(open, 0o1777)
    assert.throws(() => prepareStateDir(open), (err: unknown) => err instanceof ConfigError && err.code === 'TLSFLEET_ERR_CONFIG' && /--state-dir ".*open": writable by group or others \(mode 01777, owner uid 0\).*chmod 700/.test(err.message))
    const foreign = path.join(tempDir(), 'foreign')
    fs.mkdirSync(foreign, { mode: 0o700 })
    fs.chownSync(foreign, OTHER_UID, OTHER_UID)
    assert.throws(() => prepareStateDir(foreign), (err: unknown) => err instanceof ConfigError && new RegExp(`owned by uid ${OTHER_UID} \\(mode 0700\\).*chown`).test(err.message))
    prepareStateDir(foreign, [0, OTHER_UID]) // --user's own
  })

  it('an ancestor that lets another user replace it is named; a sticky one whose entry is a trusted owner\'s is not', () => {
    const open = path.join(tempDir(), 'open')
    const state = path.join(open, 'state')
    prepareStateDir(state)
    fs.chmodSync(open, 0o777)
    assert.deepEqual(stateDirAncestorProblems(state), [`${open} (mode 0777, owner uid 0): writable by group or others`])
    // Sticky, as /tmp: others cannot rename what is not theirs.
    fs.chmodSync(open, 0o1777)
    assert.deepEqual(stateDirAncestorProblems(state), [])
    fs.chownSync(state, OTHER_UID, OTHER_UID)
    assert.deepEqual(stateDirAncestorProblems(state), [`${open} (mode 01777, owner uid 0): writable by group or others`])
    assert.deepEqual(stateDirAncestorProblems(state, [0, OTHER_UID]), [], '--user\'s own entry')
    fs.chmodSync(open, 0o755)
    fs.chownSync(open, OTHER_UID, OTHER_UID)
    assert.deepEqual(stateDirAncestorProblems(state), [`${open} (mode 0755, owner uid ${OTHER_UID}): another user's`])
  })
})

describe('the node\'s state files refuse what was planted', () => {
  it('sync replay state: a link to a root-only file is refused and the file is not written', () => {
    const { state, victim } = scene()
    const file = path.join(state, 'sync-replay-127.0.0.1_1.json')
    fs.symlinkSync(victim, file)
    assert.throws(() => new ReplayState({ file, startMs: 1000, maxSkewMs: 5000, sessionLifetimeMs: 300_000, log: silent }, new ReplayGuard()), (err: unknown) => err instanceof SyncStateError && /symbolic link/.test(err.message))
    assert.equal(fs.readFileSync(victim, 'utf8'), SECRET)
  })

  it('self-signed.pem: a link to a key elsewhere is refused, not loaded', async () => {
    const { state, victim } = scene()
    fs.symlinkSync(victim, path.join(state, 'self-signed.pem'))
    await assert.rejects(ensureSelfSignedCertificate(state), /self-signed\.pem.*symbolic link/)
  })

  it('admin.token: a link is refused, by the node and by the CLI (any owner)', () => {
    const { state, victim } = scene()
    const token = path.join(state, 'admin.token')
    fs.symlinkSync(victim, token)
    assert.throws(() => readGeneratedToken(token, ANY_OWNER), /admin\.token": cannot read: a symbolic link/)
  })
})
