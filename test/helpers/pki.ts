import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

export interface Issued {
  /** PEM key + certificate + CA certificate: the layout --cert takes. */
  bundle: string
  key: string
  cert: string
}

/**
 * A small certificate authority run with the real `openssl ca` (its index.txt is what
 * `openssl ocsp -index` answers from and what `openssl ca -gencrl` revokes from): server and
 * client certificates, revocations, CRLs, a delegated OCSP signer, and a real OCSP responder.
 */
export class TestCa {
  readonly cert: string
  readonly key: string
  private readonly config: string

  /** `parent`: an intermediate CA, signed by that one (its certificates' bundles then carry this intermediate). */
  constructor (readonly dir: string, readonly name = 'tlsfleet test CA', parent?: TestCa) {
    fs.mkdirSync(path.join(dir, 'issued'), { recursive: true })
    this.cert = path.join(dir, 'ca.pem')
    this.key = path.join(dir, 'ca.key')
    this.config = path.join(dir, 'ca.cnf')
    fs.writeFileSync(path.join(dir, 'index.txt'), '')
    fs.writeFileSync(path.join(dir, 'crlnumber'), '01\n')
    fs.writeFileSync(this.config, [
      '[ca]', 'default_ca = test_ca',
      '[test_ca]', `dir = ${dir}`, 'database = $dir/index.txt', 'new_certs_dir = $dir/issued',
      'certificate = $dir/ca.pem', 'private_key = $dir/ca.key', 'serial = $dir/serial', 'crlnumber = $dir/crlnumber',
      'default_md = sha256', 'default_days = 2', 'default_crl_days = 2', 'policy = any', 'unique_subject = no', 'email_in_dn = no',
      '[any]', 'commonName = supplied', 'organizationName = optional',
      '[ca_ext]', 'basicConstraints = critical, CA:true', 'keyUsage = critical, keyCertSign, cRLSign, digitalSignature', 'subjectKeyIdentifier = hash',
      ''
    ].join('\n'))
    fs.writeFileSync(path.join(dir, 'serial'), '1000\n')
    if (parent === undefined) {
      openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', this.key, '-out', this.cert,
        '-days', '3', '-subj', `/CN=${name}`, '-config', this.config, '-extensions', 'ca_ext'])
    } else {
      const csr = path.join(dir, 'ca.csr')
      openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', this.key, '-out', csr, '-subj', `/CN=${name}`])
      openssl(['ca', '-batch', '-config', parent.config, '-in', csr, '-out', this.cert, '-extensions', 'ca_ext', '-notext'])
    }
  }

  /**
   * A certificate signed by this CA. `names` go in subjectAltName (server) and names[0] is the
   * CN; `ocspUrl` puts an OCSP responder in Authority Information Access.
   */
  issue (file: string, opts: { names: string[]; usage: 'server' | 'client' | 'ocsp'; ocspUrl?: string; keyType?: 'rsa' | 'ecdsa'; clientAltNames?: string[]; addresses?: string[] }): Issued {
    const key = path.join(this.dir, `${file}.key`)
    const csr = path.join(this.dir, `${file}.csr`)
    const cert = path.join(this.dir, `${file}.crt`)
    const ext = path.join(this.dir, `${file}.ext`)
    const lines = ['[ext]', 'basicConstraints = CA:false', 'authorityKeyIdentifier = keyid']
    if (opts.usage === 'server') lines.push('keyUsage = digitalSignature, keyEncipherment', 'extendedKeyUsage = serverAuth', `subjectAltName = ${[...opts.names.map((n) => `DNS:${n}`), ...(opts.addresses ?? []).map((a) => `IP:${a}`)].join(',')}`)
    if (opts.usage === 'client') lines.push('keyUsage = digitalSignature', 'extendedKeyUsage = clientAuth')
    if (opts.usage === 'client' && opts.clientAltNames !== undefined) lines.push(`subjectAltName = ${opts.clientAltNames.map((n) => `DNS:${n}`).join(',')}`)
    if (opts.usage === 'ocsp') lines.push('keyUsage = digitalSignature', 'extendedKeyUsage = OCSPSigning')
    if (opts.ocspUrl !== undefined) lines.push(`authorityInfoAccess = OCSP;URI:${opts.ocspUrl}`)
    fs.writeFileSync(ext, lines.join('\n') + '\n')
    const keyArgs = (opts.keyType ?? 'rsa') === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']
    openssl(['req', ...keyArgs, '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${opts.names[0] ?? file}`])
    openssl(['ca', '-batch', '-config', this.config, '-in', csr, '-out', cert, '-extfile', ext, '-extensions', 'ext', '-notext'])
    const bundle = path.join(this.dir, `${file}.pem`)
    fs.writeFileSync(bundle, fs.readFileSync(key, 'utf8') + fs.readFileSync(cert, 'utf8') + fs.readFileSync(this.cert, 'utf8'), { mode: 0o600 })
    return { bundle, key, cert }
  }

  revoke (issued: Issued): void {
    openssl(['ca', '-batch', '-config', this.config, '-revoke', issued.cert])
  }

  /** A fresh CRL (PEM) with every revocation so far. */
  crl (file = 'crl.pem'): string {
    const out = path.join(this.dir, file)
    openssl(['ca', '-batch', '-config', this.config, '-gencrl', '-out', out])
    return out
  }

  /**
   * `openssl ocsp` answering from this CA's index on `port` (signed by `signer`, the CA itself
   * by default), each response valid for `minutes`. Resolves once it says it is waiting for
   * clients: probing its port would wedge it (it serves one connection at a time and blocks on
   * one that closes without a request).
   */
  async startResponder (port: number, opts: { minutes?: number; signer?: Issued } = {}): Promise<ChildProcess> {
    const signerCert = opts.signer?.cert ?? this.cert
    const signerKey = opts.signer?.key ?? this.key
    const child = spawn('openssl', ['ocsp', '-index', path.join(this.dir, 'index.txt'), '-port', String(port), '-rsigner', signerCert, '-rkey', signerKey,
      '-CA', this.cert, '-nmin', String(opts.minutes ?? 60), '-ignore_err'], { stdio: ['ignore', 'pipe', 'pipe'] })
    process.once('exit', () => child.kill('SIGKILL'))
    let output = ''
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`openssl ocsp did not start on port ${port}: ${output}`)), 10_000)
      const onData = (d: Buffer): void => {
        output += d.toString()
        if (output.includes('waiting for OCSP client connections')) { clearTimeout(timer); resolve() }
      }
      child.stdout?.on('data', onData)
      child.stderr?.on('data', onData)
      child.once('exit', () => { clearTimeout(timer); reject(new Error(`openssl ocsp exited: ${output}`)) })
    })
    return child
  }
}

export async function stopProcess (child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
  })
}

function openssl (args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}
