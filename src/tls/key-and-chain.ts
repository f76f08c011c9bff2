/**
 * A PEM file holding one private key and a certificate with its chain, as --cert and
 * --session-store-cert take it: the blocks found, then the key and certificates parsed and
 * matched. No DNS-name check here (a client certificate names none). Problems are returned,
 * not thrown, so that each option keeps the wording its operators and tests know.
 */
import crypto from 'node:crypto'

/** Any PEM block (global: with matchAll, all of them); its label is group 1. */
export const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g

/** The blocks of a file, in file order: private keys (any kind), plain certificates, and every block's label. */
export interface PemBlocks {
  keys: string[]
  certs: string[]
  labels: string[]
}

export function pemBlocks (text: string): PemBlocks {
  const blocks: PemBlocks = { keys: [], certs: [], labels: [] }
  for (const match of text.matchAll(PEM_BLOCK)) {
    const label = match[1] ?? ''
    blocks.labels.push(label)
    if (label.endsWith('PRIVATE KEY')) blocks.keys.push(match[0])
    else if (label === 'CERTIFICATE') blocks.certs.push(match[0])
  }
  return blocks
}

export interface KeyAndChain {
  /** The private key's PEM block, as found. */
  key: string
  privateKey: crypto.KeyObject
  /** The first certificate: the one the key belongs to. */
  leaf: crypto.X509Certificate
  /** The certificates, leaf first, as one PEM text (what a TLS context takes). */
  cert: string
}

/** Why a key and its certificates do not make a usable pair, in the order they are checked. */
export type KeyAndChainProblem =
  | { problem: 'unreadable key'; message: string }
  /** `index`: 0-based, 0 being the leaf. */
  | { problem: 'unreadable certificate'; index: number; message: string }
  /** `fits`: the 0-based index of a later certificate the key belongs to, if any (the file's order is wrong). */
  | { problem: 'key mismatch'; fits: number | undefined }

/**
 * Parse `key` and `certs` (leaf first), every certificate checked: OpenSSL would otherwise
 * refuse the chain only when a context is built (a handshake, a connection to the store), and
 * blame something else.
 */
export function parseKeyAndChain (key: string, certs: readonly string[]): KeyAndChain | KeyAndChainProblem {
  let privateKey: crypto.KeyObject
  try {
    privateKey = crypto.createPrivateKey(key)
  } catch (err) {
    return { problem: 'unreadable key', message: (err as Error).message }
  }
  const parsed: crypto.X509Certificate[] = []
  for (const [index, pem] of certs.entries()) {
    try {
      parsed.push(new crypto.X509Certificate(pem))
    } catch (err) {
      return { problem: 'unreadable certificate', index, message: (err as Error).message }
    }
  }
  const [leaf] = parsed
  if (leaf === undefined) return { problem: 'unreadable certificate', index: 0, message: 'no certificate given' }
  if (!leaf.checkPrivateKey(privateKey)) {
    const fits = parsed.findIndex((cert, i) => i > 0 && cert.checkPrivateKey(privateKey))
    return { problem: 'key mismatch', fits: fits > 0 ? fits : undefined }
  }
  return { key, privateKey, leaf, cert: certs.join('\n') + '\n' }
}
