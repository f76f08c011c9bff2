import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

// One exit listener for every directory (a listener each made Node warn of a leak past ten).
const tempDirs: string[] = []
process.once('exit', () => { for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true }) })

/** A temporary directory removed when the test process exits. */
export function tempDir (prefix = 'tlsfleet-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  tempDirs.push(dir)
  return dir
}

/**
 * Make a self-signed certificate with the real `openssl` CLI and write key + cert into one
 * PEM file (the layout `--cert` takes). `names[0]` is the CN; all names go in subjectAltName.
 */
export function makeCertificate (dir: string, file: string, names: string[], keyType: 'rsa' | 'ecdsa' | 'ecdsa-p384' | 'ed25519' | 'rsa-1024' = 'rsa'): string {
  const keyFile = path.join(dir, `${file}.key`)
  const certFile = path.join(dir, `${file}.crt`)
  // rsa-1024: a key OpenSSL's default security level refuses (the policy check's test).
  const keyArgs = keyType === 'ecdsa' || keyType === 'ecdsa-p384'
    ? ['-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${keyType === 'ecdsa' ? 'P-256' : 'P-384'}`]
    : keyType === 'ed25519' ? ['-newkey', 'ed25519'] : ['-newkey', keyType === 'rsa' ? 'rsa:2048' : 'rsa:1024']
  execFileSync('openssl', [
    'req', '-x509', ...keyArgs, '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2',
    '-subj', `/CN=${names[0] ?? 'localhost'}`,
    '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`
  ], { stdio: 'ignore' })
  const pem = path.join(dir, `${file}.pem`)
  fs.writeFileSync(pem, fs.readFileSync(keyFile, 'utf8') + fs.readFileSync(certFile, 'utf8'), { mode: 0o600 })
  return pem
}
