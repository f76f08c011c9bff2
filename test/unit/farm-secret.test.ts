import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { FarmSecretError } from '../../src/errors.js'
import { estimatedEntropyBits, loadFarmSecrets, writeFarmSecretFile } from '../../src/sync/farm-secret.js'
import { tempDir } from '../helpers/certs.js'

const dir = tempDir()
const secretFile = (name: string, text: string): string => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, text, { mode: 0o600 })
  return file
}

test('a low-entropy farm secret is refused with a message that says how to make one', () => {
  for (const [name, text] of [['as', 'a'.repeat(44)], ['abab', 'ab'.repeat(22)], ['words', 'password'.repeat(5)]] as const) {
    const file = secretFile(name, text + '\n')
    assert.throws(() => loadFarmSecrets([file]), (err: unknown) => {
      assert.ok(err instanceof FarmSecretError)
      assert.match(err.message, new RegExp(`--sync-secret-file ".*${name}": looks guessable \\(about \\d+ bits of entropy, at least 80 are needed\\); make one with: openssl rand -base64 48 > `))
      return true
    }, name)
  }
})

test('secrets as operators make them are accepted: openssl rand -base64 48, -hex 16, -hex 32, raw bytes', () => {
  for (let i = 0; i < 200; i++) {
    for (const secret of [crypto.randomBytes(48).toString('base64'), crypto.randomBytes(16).toString('hex'), crypto.randomBytes(32).toString('hex')]) {
      assert.ok(estimatedEntropyBits(Buffer.from(secret)) >= 80, secret)
    }
    assert.ok(estimatedEntropyBits(crypto.randomBytes(32)) >= 80)
  }
  const written = writeFarmSecretFile(path.join(dir, 'farm.key'))
  assert.equal(loadFarmSecrets([written]).length, 1)
  assert.equal(fs.statSync(written).mode & 0o777, 0o600)
})
