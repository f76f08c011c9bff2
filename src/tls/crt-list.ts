import type { TlsVersion } from './tls-policy.js'
import type { ClientVerify } from './client-auth.js'

/**
 * HAProxy's crt-list format (configuration manual, bind option "crt-list"), one certificate a
 * line: `<crtfile> [\[<sslbindconf> ...\]] [[!]<snifilter> ...]`, `#` comments and blank lines
 * allowed. Only the sslbindconf keywords that map onto tlsfleet's own TLS options are taken;
 * any other one is refused by name rather than ignored (a line that silently lost its
 * `verify required` would serve its name without client certificates).
 */

/** What one line's sslbindconf sets; absent: the node's global option applies. */
export interface CrtListKeywords {
  alpn?: string[]
  ciphers?: string
  ciphersuites?: string
  curves?: string
  sigalgs?: string
  sslMinVer?: TlsVersion
  sslMaxVer?: TlsVersion
  verify?: ClientVerify
  caFile?: string
  crlFile?: string
  noTlsTickets?: true
}

export interface CrtListLine {
  /** 1-based, as an editor shows it. */
  line: number
  crtFile: string
  keywords: CrtListKeywords
  /** Positive SNI filters (exact names and `*.domain`), lowercased; empty: the certificate's own names. */
  names: string[]
  /** `!name` filters: names this line's certificate is not served for, though a wildcard of it covers them. */
  excluded: string[]
}

/** A refused crt-list: names the file, the line and the keyword or problem. */
export class CrtListProblem extends Error {
  constructor (readonly file: string, readonly line: number, readonly problem: string) {
    super(`crt-list "${file}" line ${line}: ${problem}`)
  }
}

/** The keywords taken, with the number of values each takes. */
const KEYWORDS: Readonly<Record<string, 0 | 1>> = {
  alpn: 1,
  ciphers: 1,
  ciphersuites: 1,
  curves: 1,
  sigalgs: 1,
  'ssl-min-ver': 1,
  'ssl-max-ver': 1,
  verify: 1,
  'ca-file': 1,
  'crl-file': 1,
  'no-tls-tickets': 0
}

/** HAProxy's version words; SSLv3 is not offered by this node's OpenSSL policy at all. */
const VERSIONS: Readonly<Record<string, TlsVersion>> = { 'TLSv1.0': 'TLSv1', 'TLSv1.1': 'TLSv1.1', 'TLSv1.2': 'TLSv1.2', 'TLSv1.3': 'TLSv1.3' }
const VERIFY: Readonly<Record<string, ClientVerify>> = { none: 'none', optional: 'optional', required: 'require' }
/** An SNI filter: a DNS name, or `*.` and one. */
const SNI_FILTER = /^(\*\.)?[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/

/** Every line of `text` (the content of `file`), or the first problem found. */
export function parseCrtList (text: string, file: string): CrtListLine[] {
  const lines: CrtListLine[] = []
  text.split('\n').forEach((raw, i) => {
    const parsed = parseLine(raw.replace(/\r$/, ''), file, i + 1)
    if (parsed !== undefined) lines.push(parsed)
  })
  if (lines.length === 0) throw new CrtListProblem(file, 0, 'no certificate line in it (only blank lines and comments)')
  return lines
}

function parseLine (raw: string, file: string, line: number): CrtListLine | undefined {
  const problem = (what: string): CrtListProblem => new CrtListProblem(file, line, what)
  const hash = raw.indexOf('#')
  const text = (hash >= 0 ? raw.slice(0, hash) : raw).trim()
  if (text === '') return undefined
  if (/["'\\]/.test(text)) throw problem('quotes and backslashes are not supported (a path or value with spaces cannot be given)')
  // `[` and `]` may touch the keywords (`[alpn h2]`) or stand alone (`[ alpn h2 ]`).
  const tokens = text.replace(/\[/g, ' [ ').replace(/\]/g, ' ] ').split(/\s+/).filter((t) => t !== '')
  const crtFile = tokens.shift() as string
  if (crtFile === '[' || crtFile === ']') throw problem('the line must start with the certificate file')
  const keywords: CrtListKeywords = {}
  if (tokens[0] === '[') {
    tokens.shift()
    const end = tokens.indexOf(']')
    if (end < 0) throw problem('"[" without its "]" (the sslbindconf keywords must be closed on the same line)')
    const conf = tokens.splice(0, end + 1).slice(0, -1)
    if (conf.includes('[')) throw problem('a second "[" inside the sslbindconf')
    parseKeywords(conf, keywords, problem)
  }
  if (tokens.includes('[') || tokens.includes(']')) throw problem('"[" or "]" after the SNI filters: the sslbindconf goes right after the certificate file')
  const names: string[] = []
  const excluded: string[] = []
  for (const token of tokens) {
    const negated = token.startsWith('!')
    const name = (negated ? token.slice(1) : token).toLowerCase()
    if (!SNI_FILTER.test(name)) throw problem(`SNI filter "${token}" is not a host name or *.domain wildcard`)
    if (negated && name.startsWith('*.')) throw problem(`SNI filter "${token}": a negated wildcard excludes nothing (HAProxy ignores it); name the hosts to exclude`)
    const list = negated ? excluded : names
    if (!list.includes(name)) list.push(name)
  }
  return { line, crtFile, keywords, names: names.filter((n) => !excluded.includes(n)), excluded }
}

function parseKeywords (conf: string[], keywords: CrtListKeywords, problem: (what: string) => CrtListProblem): void {
  const seen = new Set<string>()
  for (let i = 0; i < conf.length; i++) {
    const keyword = conf[i] as string
    const arity = KEYWORDS[keyword]
    if (arity === undefined) throw problem(`keyword "${keyword}" is not supported (supported: ${Object.keys(KEYWORDS).join(', ')})`)
    if (seen.has(keyword)) throw problem(`keyword "${keyword}" given twice`)
    seen.add(keyword)
    if (arity === 0) {
      keywords.noTlsTickets = true
      continue
    }
    const value = conf[++i]
    if (value === undefined) throw problem(`keyword "${keyword}" needs a value`)
    const bad = (expected: string): CrtListProblem => problem(`keyword "${keyword}": "${value}" is not ${expected}`)
    switch (keyword) {
      case 'alpn': {
        const protocols = value.split(',')
        if (protocols.some((p) => !/^[\x21-\x7e]{1,255}$/.test(p))) throw bad('a comma-separated list of protocol names (1 to 255 printable characters each)')
        keywords.alpn = protocols
        break
      }
      case 'ssl-min-ver':
      case 'ssl-max-ver': {
        const version = VERSIONS[value]
        if (version === undefined) throw bad(`one of ${Object.keys(VERSIONS).join(', ')}`)
        if (keyword === 'ssl-min-ver') keywords.sslMinVer = version
        else keywords.sslMaxVer = version
        break
      }
      case 'verify': {
        const verify = VERIFY[value]
        if (verify === undefined) throw bad('one of none, optional, required')
        keywords.verify = verify
        break
      }
      case 'ciphers': keywords.ciphers = value; break
      case 'ciphersuites': keywords.ciphersuites = value; break
      case 'curves': keywords.curves = value; break
      case 'sigalgs': keywords.sigalgs = value; break
      case 'ca-file': keywords.caFile = value; break
      case 'crl-file': keywords.crlFile = value; break
    }
  }
}

/** Whether a line sets anything: one that does not is served exactly as a --cert file is. */
export function hasKeywords (keywords: CrtListKeywords): boolean {
  return Object.keys(keywords).length > 0
}
