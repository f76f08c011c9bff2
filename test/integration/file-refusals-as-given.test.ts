import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { runNodeToExit } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

// A refused --client-ca, --crl, --session-store-ca or --session-store-cert file is named by the
// option as the operator gave it (a TLSFLEET_* variable, a YAML key), as --cert's and the TLS
// policy's refusals are: "--crl" is not what they would look for in a compose file.
const dir = tempDir()
const cert = makeCertificate(dir, 'server', ['app.test'])
const notPem = path.join(dir, 'not-pem.txt')
fs.writeFileSync(notPem, 'this is not PEM\n')
const secret = path.join(dir, 'farm.secret')
fs.writeFileSync(secret, crypto.randomBytes(48).toString('base64'), { mode: 0o600 })

test('--client-ca, --crl, --session-store-ca and --session-store-cert refusals name the variable or the YAML key that gave the file', async () => {
  const [port, admin, nothing] = await freePorts(3) as [number, number, number]
  const base = ['--workers', '1', '--cert', cert, '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${admin}`, '--state-dir', path.join(dir, 'state')]
  // Nothing listens there: the files are read (and refused) before the store is connected to.
  const store = ['--session-store', `rediss://127.0.0.1:${nothing}/0`, '--sync-secret-file', secret]
  const yaml = (name: string, body: string): string => {
    const file = path.join(dir, `${name}.yaml`)
    fs.writeFileSync(file, body)
    return file
  }
  const cases: Array<[string, string[], NodeJS.ProcessEnv, RegExp]> = [
    ['client-ca by variable', ['--client-verify', 'require'], { TLSFLEET_CLIENT_CA: notPem }, /^tlsfleet: TLSFLEET_CLIENT_CA ".*not-pem\.txt": no PEM certificate in it/m],
    ['crl by variable', ['--client-verify', 'optional', '--client-ca', cert], { TLSFLEET_CRL: notPem }, /^tlsfleet: TLSFLEET_CRL ".*not-pem\.txt": no PEM CRL in it/m],
    ['client-ca by YAML key', ['--client-verify', 'require', '--config', yaml('client-ca', `client-ca: ${notPem}\n`)], {}, /^tlsfleet: .*client-ca\.yaml key "client-ca" ".*not-pem\.txt": no PEM certificate in it/m],
    ['crl by YAML key', ['--client-verify', 'optional', '--client-ca', cert, '--config', yaml('crl', `crl: ${notPem}\n`)], {}, /^tlsfleet: .*crl\.yaml key "crl" ".*not-pem\.txt": no PEM CRL in it/m],
    ['session-store-ca by variable', store, { TLSFLEET_SESSION_STORE_CA: notPem }, /^tlsfleet: TLSFLEET_SESSION_STORE_CA ".*not-pem\.txt": no PEM certificate in it/m],
    ['session-store-cert by variable', store, { TLSFLEET_SESSION_STORE_CERT: notPem }, /^tlsfleet: TLSFLEET_SESSION_STORE_CERT ".*not-pem\.txt": expected one private key and the client certificate/m],
    ['session-store-cert by YAML key', [...store, '--config', yaml('store-cert', `session-store-cert: ${notPem}\n`)], {}, /^tlsfleet: .*store-cert\.yaml key "session-store-cert" ".*not-pem\.txt": expected one private key/m],
    // Given as a flag: still the flag.
    ['crl by flag', ['--client-verify', 'optional', '--client-ca', cert, '--crl', notPem], {}, /^tlsfleet: --crl ".*not-pem\.txt": no PEM CRL in it/m]
  ]
  for (const [what, args, env, expected] of cases) {
    const run = await runNodeToExit([...base, ...args], { env })
    assert.equal(run.code, 2, `${what}: ${run.stderr}`)
    assert.match(run.stderr, expected, what)
  }
})
