import fs from 'node:fs'
import path from 'node:path'
import { generate } from 'selfsigned'
import { CertificateError } from '../errors.js'

/** Where the default certificate is kept. */
export function selfSignedFile (stateDir: string): string {
  return path.join(stateDir, 'self-signed.pem')
}

/**
 * The built-in default certificate: generated once into the state directory on first start
 * (RSA-2048, names localhost, 127.0.0.1 and ::1), then reused, so clients that pin it and
 * sessions across restarts keep working.
 */
export async function ensureSelfSignedCertificate (stateDir: string): Promise<{ file: string; created: boolean }> {
  const file = selfSignedFile(stateDir)
  try {
    fs.statSync(file)
    return { file, created: false }
  } catch (err) {
    // Only a missing file is made anew: one this process may not look at (EACCES after the
    // switch to --user) must not become a new key on every SIGHUP.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new CertificateError(file, `the self-signed certificate in --state-dir cannot be read: ${(err as Error).message} (with --user, the directory and the file must be that user's)`)
    }
  }
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 })
  const notBefore = new Date(Date.now() - 60_000)
  const notAfter = new Date(notBefore.getTime() + 365 * 86_400_000)
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'rsa',
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate: notBefore,
    notAfterDate: notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] }
    ]
  })
  // Write to a temporary name and rename, so a concurrent start never reads half a file.
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, `${pems.private}\n${pems.cert}\n`, { mode: 0o600 })
  fs.renameSync(tmp, file)
  return { file, created: true }
}
