import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

export type CertKind = 'rsa' | 'ecdsa'
export const CERT_KINDS: readonly CertKind[] = ['rsa', 'ecdsa']

/** A self-signed certificate (RSA-2048 or ECDSA P-256) made with openssl; key + cert in one PEM. */
export function makeBenchCertificate (dir: string, kind: CertKind): string {
  const key = path.join(dir, `${kind}.key`)
  const crt = path.join(dir, `${kind}.crt`)
  const keyArgs = kind === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']
  execFileSync('openssl', ['req', '-x509', ...keyArgs, '-nodes', '-keyout', key, '-out', crt, '-days', '7', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' })
  const pem = path.join(dir, `${kind}.pem`)
  // hitch wants the certificate and the key in one file; the order key, cert suits every server here.
  fs.writeFileSync(pem, fs.readFileSync(key, 'utf8') + fs.readFileSync(crt, 'utf8'), { mode: 0o644 })
  return pem
}
