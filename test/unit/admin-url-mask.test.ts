import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AdminClient } from '../../src/cli/admin-client.js'
import { AdminClientError } from '../../src/errors.js'

function refusal (admin: string): string {
  try {
    // eslint-disable-next-line no-new -- only the constructor's refusal is wanted
    new AdminClient({ admin })
  } catch (err) {
    assert.ok(err instanceof AdminClientError, String(err))
    return err.message
  }
  assert.fail(`accepted ${admin}`)
}

test('a refused --admin URL never shows its password', () => {
  const bad = refusal('http://user:s3cret@127.0.0.1:99999')
  assert.ok(!bad.includes('s3cret'), bad)
  assert.match(bad, /^--admin "http:\/\/user:\*\*\*@127\.0\.0\.1:99999" is not a URL/)
  const scheme = refusal('ftp://user:s3cret@127.0.0.1:21')
  assert.ok(!scheme.includes('s3cret'), scheme)
  assert.match(scheme, /only http:\/\/ and https:\/\//)
  assert.match(refusal('http://user:s3cret@127.0.0.1:8445'), /user:password@ is refused/)
})
