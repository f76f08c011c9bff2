import crypto from 'node:crypto'
import fs from 'node:fs'
import { ConfigError } from '../errors.js'

/** PEM CERTIFICATE blocks in a text (global: with `match`, all of them). */
export const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** A file an option names, as text; a refusal names the option and the file. */
export function readPemFile (option: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError([`${option} "${file}": cannot read: ${(err as Error).message}`])
  }
}

/** Certificate `index` (0-based) of a file, parsed; a refusal names the option, the file and its place. */
export function parseCertificateBlock (option: string, file: string, block: string, index: number): crypto.X509Certificate {
  try {
    return new crypto.X509Certificate(block)
  } catch (err) {
    throw new ConfigError([`${option} "${file}": certificate ${index + 1} is unreadable: ${(err as Error).message}`])
  }
}

/** A CA file (--client-ca, --session-store-ca): its certificates as PEM text, each checked. */
export function readCaCertificates (option: string, file: string): string {
  const blocks = readPemFile(option, file).match(CERTIFICATE_BLOCK) ?? []
  if (blocks.length === 0) throw new ConfigError([`${option} "${file}": no PEM certificate in it (expected -----BEGIN CERTIFICATE----- blocks)`])
  blocks.forEach((block, i) => parseCertificateBlock(option, file, block, i))
  return blocks.join('\n') + '\n'
}
