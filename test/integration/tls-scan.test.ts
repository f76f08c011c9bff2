import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { TLS_PROFILES, type TlsProfileName } from '../../src/tls/tls-policy.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { startNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

// Debian's sslscan (installed by .ci/run) against a node under each profile: it offers exactly
// the profile's protocol versions, and no cipher or group outside the profile's lists.
const execFileAsync = promisify(execFile)
const dir = tempDir()
const certs = { rsa: makeCertificate(dir, 'rsa', ['scan.test'], 'rsa'), ecdsa: makeCertificate(dir, 'ecdsa', ['scan.test'], 'ecdsa') }

interface Scan { versions: Set<string>; ciphers: Array<{ version: string; cipher: string }>; groups: Set<string> }

async function scan (port: number): Promise<Scan> {
  const { stdout } = await execFileAsync('sslscan', ['--no-colour', '--no-check-certificate', '--no-heartbleed', '--no-renegotiation', '--no-compression', '--no-fallback', '--sni-name=scan.test', `127.0.0.1:${port}`], { timeout: 120_000 })
  const result: Scan = { versions: new Set(), ciphers: [], groups: new Set() }
  for (const line of stdout.split('\n')) {
    const version = /^(SSLv[23]|TLSv1\.[0-3])\s+enabled/.exec(line)
    if (version !== null) result.versions.add((version[1] as string).replace('TLSv1.0', 'TLSv1'))
    const cipher = /^(?:Preferred|Accepted)\s+(TLSv1\.[0-3])\s+\d+ bits\s+(\S+)/.exec(line)
    if (cipher !== null) result.ciphers.push({ version: (cipher[1] as string).replace('TLSv1.0', 'TLSv1'), cipher: cipher[2] as string })
    const group = /^TLSv1\.[0-3]\s+\d+ bits\s+(\S+)/.exec(line)
    if (group !== null) result.groups.add(group[1] as string)
  }
  return result
}

/** sslscan's group names as OpenSSL's configuration spells them. */
const GROUP_NAMES: Record<string, string> = { x25519: 'X25519', secp256r1: 'prime256v1', secp384r1: 'secp384r1', secp521r1: 'secp521r1', x448: 'X448' }
const VERSIONS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']

for (const profile of ['modern', 'intermediate', 'old'] as TlsProfileName[]) {
  test(`sslscan finds only the ${profile} profile's versions, ciphers and groups`, async () => {
    const spec = TLS_PROFILES[profile]
    const expectedVersions = VERSIONS.slice(VERSIONS.indexOf(spec.versions[0]), VERSIONS.indexOf(spec.versions[1]) + 1)
    const [port, admin] = await freePorts(2) as [number, number]
    // An RSA and an ECDSA certificate: between them every key exchange of the profile can show.
    const node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${port}`, '--cert', certs.rsa, '--tls-profile', profile], { adminPort: admin })
    const [portEc, adminEc] = await freePorts(2) as [number, number]
    const nodeEc = await startNode(['--workers', '1', '--listen', `127.0.0.1:${portEc}`, '--cert', certs.ecdsa, '--tls-profile', profile], { adminPort: adminEc })
    try {
      for (const result of [await scan(port), await scan(portEc)]) {
        assert.deepEqual([...result.versions].sort(), expectedVersions.sort(), 'protocol versions offered')
        assert.ok(result.ciphers.length > 0, 'sslscan found no cipher at all')
        for (const { version, cipher } of result.ciphers) {
          const allowed = version === 'TLSv1.3' ? spec.ciphersuites : spec.ciphers
          assert.ok(allowed.includes(cipher), `${version} ${cipher} is not in the ${profile} profile`)
        }
        assert.ok(result.groups.size > 0, 'sslscan found no key exchange group')
        for (const group of result.groups) assert.ok(spec.curves.includes(GROUP_NAMES[group] ?? group), `group ${group} is not in the ${profile} profile`)
      }
    } finally {
      await Promise.all([node.stop(), nodeEc.stop()])
    }
  })
}
