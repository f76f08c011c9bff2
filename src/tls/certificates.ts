import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { CertificateError } from '../errors.js'
import { MAX_CERTIFICATE_BYTES, readBoundedFile, readProblem } from '../util/bounded-file.js'
import { parseKeyAndChain, pemBlocks, PEM_BLOCK, type KeyAndChainProblem } from './key-and-chain.js'

/**
 * A certificate file as the primary reads and checks it: the PEM text (sent to workers, which
 * never touch the file system for certificates) and the host names SNI should route to it.
 */
export interface CertificateBundle {
  path: string
  key: string
  cert: string   // leaf first, then the chain
  names: string[]
  keyType: string
  /** The named curve of an EC key (`prime256v1`, `secp384r1`, `secp521r1`). */
  curve?: string
  notAfter: string
}


/** Read one PEM file holding a private key, a certificate and its chain, and check they fit. */
export function loadCertificateFile (path: string): CertificateBundle {
  let text: string
  try {
    // Bounded (bounded-file.ts): a FIFO or a device named --cert, or linked into --cert-dir,
    // is refused at once instead of hanging or filling memory.
    text = readBoundedFile(path, { maxBytes: MAX_CERTIFICATE_BYTES, what: 'a certificate file (key, certificate and chain)' }).toString('utf8')
  } catch (err) {
    throw new CertificateError(path, readProblem(err))
  }
  return parseCertificatePem(text, path)
}

export function parseCertificatePem (text: string, path: string): CertificateBundle {
  const { keys, certs, labels } = pemBlocks(text)
  // A deploy that stopped half-way, or a file truncated: not a format problem.
  if (text.trim() === '') throw new CertificateError(path, 'the file is empty')
  // What an operator most often has instead of one PEM file with key, certificate and chain.
  if (labels.length === 0) throw new CertificateError(path, 'not a PEM file (no -----BEGIN ...----- block; a DER file converts with openssl x509 -inform der / openssl pkey -inform der)')
  if (keys.length !== 1) throw new CertificateError(path, `expected exactly one private key, found ${keys.length} (the file must hold the key, then the certificate and its chain)`)
  if (certs.length === 0) throw new CertificateError(path, labels.includes('TRUSTED CERTIFICATE') ? 'its certificate is a TRUSTED CERTIFICATE block, which is for trust stores; give a plain CERTIFICATE' : 'no certificate found')
  const parsed = parseKeyAndChain(keys[0] as string, certs)
  if ('problem' in parsed) throw new CertificateError(path, certificateFileProblem(parsed, keys[0] as string))
  const { privateKey, leaf } = parsed
  const names = certificateNames(leaf)
  if (names.length === 0) throw new CertificateError(path, 'the certificate names no DNS host (no subjectAltName DNS entry and no CN)')
  return {
    path,
    key: parsed.key,
    cert: parsed.cert,
    names,
    keyType: privateKey.asymmetricKeyType ?? 'unknown',
    ...(privateKey.asymmetricKeyDetails?.namedCurve !== undefined ? { curve: privateKey.asymmetricKeyDetails.namedCurve } : {}),
    notAfter: leaf.validTo
  }
}

/** --cert's wording (and --cert-dir's) for what parseKeyAndChain found wrong with `key` and its certificates. */
function certificateFileProblem (p: KeyAndChainProblem, key: string): string {
  switch (p.problem) {
    case 'unreadable key':
      // PKCS#8 (ENCRYPTED PRIVATE KEY) and the traditional form (Proc-Type: 4,ENCRYPTED) alike.
      return key.includes('ENCRYPTED')
        ? 'the private key is encrypted (passphrase-protected keys are not supported: decrypt it with openssl pkey -in KEY -out KEY.plain, and keep that file mode 0600)'
        : `unreadable private key: ${p.message}`
    case 'unreadable certificate':
      return p.index === 0 ? `unreadable certificate: ${p.message}` : `certificate ${p.index + 1} of the file (the chain) is unreadable: ${p.message}`
    case 'key mismatch':
      return p.fits !== undefined
        ? `the private key belongs to certificate ${p.fits + 1} of the file, not the first: put the server's own certificate first, then its chain`
        : 'the private key does not match the first certificate (nor any other in the file)'
  }
}

/**
 * The largest certificate list OpenSSL clients take (SSL_CTX_set_max_cert_list's default,
 * 100 KiB): over it they abort every handshake with "excessive message size".
 */
export const OPENSSL_CLIENT_MAX_CERT_LIST = 100 * 1024

/** What a bundle's certificates weigh in the handshake's Certificate message (DER, 3-byte length each). */
export function certificateListBytes (bundle: Pick<CertificateBundle, 'cert'>): number {
  let bytes = 0
  for (const match of bundle.cert.matchAll(PEM_BLOCK)) bytes += 3 + new crypto.X509Certificate(match[0]).raw.length
  return bytes
}

/** DNS names from subjectAltName; the CN only when there is no DNS SAN (RFC 6125). Lowercased. */
export function certificateNames (cert: crypto.X509Certificate): string[] {
  const dns = (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4).trim().toLowerCase())
    .filter((name) => name !== '')
  if (dns.length > 0) return [...new Set(dns)]
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1]?.trim().toLowerCase()
  return cn !== undefined && cn !== '' ? [cn] : []
}

/** What a certificate directory gave: the files that loaded, and why each other one did not. */
export interface CertificateDirectory {
  bundles: CertificateBundle[]
  refused: CertificateError[]
}

/**
 * Every `*.pem` file of `dir`, in name order (dot files and subdirectories are skipped). A
 * broken file is refused on its own, by name, and the others still load, as with hitch's
 * pem-dir; only a directory that cannot be read at all is an error.
 */
export function loadCertificateDir (dir: string): CertificateDirectory {
  let names: string[]
  try {
    names = fs.readdirSync(dir, { withFileTypes: true })
      .filter((entry) => !entry.name.startsWith('.') && entry.name.endsWith('.pem') && (entry.isFile() || entry.isSymbolicLink()))
      .map((entry) => entry.name)
      .sort()
  } catch (err) {
    throw new CertificateError(dir, `cannot be read: ${(err as Error).message}`, '--cert-dir')
  }
  const result: CertificateDirectory = { bundles: [], refused: [] }
  for (const name of names) {
    try {
      result.bundles.push(loadCertificateFile(path.join(dir, name)))
    } catch (err) {
      if (!(err instanceof CertificateError)) throw err
      result.refused.push(err)
    }
  }
  return result
}
