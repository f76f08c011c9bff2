import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { loadNodeConfig } from '../../src/cli/node-command.js'
import { ConfigError } from '../../src/errors.js'
import { tempDir } from '../helpers/certs.js'

function refusal (configFlag: string | undefined, env: NodeJS.ProcessEnv): string {
  try {
    loadNodeConfig({}, configFlag, env)
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    return err.message
  }
  assert.fail('accepted')
}

test('the YAML file is named as given: TLSFLEET_CONFIG from the environment, --config from the flag', () => {
  const missing = path.join(tempDir(), 'missing.yaml')
  assert.match(refusal(undefined, { TLSFLEET_CONFIG: missing }), new RegExp(`^TLSFLEET_CONFIG: cannot read "${missing}"`))
  assert.match(refusal(missing, { TLSFLEET_CONFIG: '/elsewhere.yaml' }), new RegExp(`^--config: cannot read "${missing}"`))
})

test('an empty or blank config path is refused as such, not read as the file ""', () => {
  assert.equal(refusal(undefined, { TLSFLEET_CONFIG: '' }), 'TLSFLEET_CONFIG: empty (give the YAML file\'s path or unset the variable)')
  assert.equal(refusal(undefined, { TLSFLEET_CONFIG: ' ' }), 'TLSFLEET_CONFIG: blank (" ") (give the YAML file\'s path or unset the variable)')
  assert.equal(refusal('', {}), '--config: empty (give the YAML file\'s path or drop the flag)')
})

test('a config file named by TLSFLEET_CONFIG is loaded', () => {
  const file = path.join(tempDir(), 'node.yaml')
  fs.writeFileSync(file, 'workers: 3\n')
  assert.equal(loadNodeConfig({}, undefined, { TLSFLEET_CONFIG: file }).workers, 3)
})
