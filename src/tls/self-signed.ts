import path from 'node:path'
import { generate } from 'selfsigned'
import { CertificateError, ConfigError } from '../errors.js'
import { prepareStateDir } from '../node/state-dir.js'
import { readPlainFile, trustedOwners, writeFileAtomically } from '../util/safe-files.js'

/** Where the default certificate is kept. */
export function selfSignedFile (stateDir: string): string {
  return path.join(stateDir, 'self-signed.pem')
}

/**
 * The built-in default certificate: generated once into the state directory on first start
 * (RSA-2048, names localhost, 127.0.0.1 and ::1), then reused, so clients that pin it and
 * sessions across restarts keep working. Returns its PEM text as read here: the caller must not
 * open the file again by name (it could be another file by then). `owners`: who may own the
 * file and the directory (the node adds --user's).
 */
export async function ensureSelfSignedCertificate (stateDir: string, owners: readonly number[] = trustedOwners()): Promise<{ file: string; created: boolean; pem: string }> {
  const file = selfSignedFile(stateDir)
  let kept: string | undefined
  try {
    prepareStateDir(stateDir, owners)
    // Never through a link: root would load (and serve) the key it points to.
    kept = readPlainFile(file, owners)
  } catch (err) {
    if (err instanceof ConfigError) throw err // an unsafe --state-dir: the configuration must change
    // Only a missing file is made anew: one this process may not look at (EACCES after the
    // switch to --user) must not become a new key on every SIGHUP.
    throw new CertificateError(file, `the self-signed certificate in --state-dir cannot be read: ${(err as Error).message} (with --user, the directory and the file must be that user's)`)
  }
  if (kept !== undefined) return { file, created: false, pem: kept }
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
  // Whole or not at all, so a concurrent start never reads half a file.
  const pem = `${pems.private}\n${pems.cert}\n`
  writeFileAtomically(file, pem, { mode: 0o600 })
  return { file, created: true, pem }
}
