import assert from 'node:assert/strict'
import { loadConfig } from '../../src/config/load.js'
import { checkOptionCombinations } from '../../src/config/node-checks.js'
import { ConfigConflictError } from '../../src/errors.js'

/** The ConfigConflictError message for `flags`; fails the test when they are accepted. */
export function conflictMessage (flags: Record<string, unknown>): string {
  try {
    checkOptionCombinations(loadConfig({ env: {}, flags }))
  } catch (err) {
    assert.ok(err instanceof ConfigConflictError, String(err))
    return err.message
  }
  assert.fail(`accepted: ${JSON.stringify(flags)}`)
}
