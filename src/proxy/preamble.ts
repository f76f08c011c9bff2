import type net from 'node:net'
import { parseClientHello, type ClientHelloInfo } from '../tls/client-hello.js'
import { parseProxyHeader, type ProxyHeader, type ProxyMode } from './proxy-protocol.js'

/** What a worker learns before TLS starts: the PROXY header (if any) and the ClientHello. */
export interface Preamble {
  proxy?: ProxyHeader
  hello?: ClientHelloInfo
}

/** Why a connection was refused before TLS: counted, then the socket is destroyed. */
export type PreambleFailure =
  | { kind: 'proxy'; reason: string }
  | { kind: 'refused'; reason: string }
  | { kind: 'not_tls' }
  | { kind: 'closed' }
  /**
   * Closed before its first TLS byte: a balancer's health check (HAProxy's `check` with
   * `send-proxy-v2` sends a LOCAL header and closes; a plain TCP check only connects), or a
   * client gone at once. Not a handshake failure: counted apart, so checks never look like one.
   */
  | { kind: 'no_tls'; header: 'local' | 'proxy' | 'none' }

/**
 * Asked once the PROXY header is read (or known absent, in auto mode), before the ClientHello:
 * who the client is is known from then on. `after`: bytes received after the header so far.
 * A failure closes the connection.
 */
export type HeaderCheck = (header: ProxyHeader | undefined, after: number) => PreambleFailure | undefined

/**
 * Reads the first bytes of a connection: the PROXY header when one is expected, then enough
 * to parse the ClientHello. Everything after the PROXY header is pushed back into the socket
 * (`unshift`) so the TLS layer sees the stream from its first byte. A ClientHello we cannot
 * parse (but that looks like TLS, the SSLv2-compatible format included) is still handed to
 * OpenSSL, which serves it or answers with a proper alert.
 */
export function readPreamble (
  socket: net.Socket,
  proxyMode: ProxyMode,
  done: (result: Preamble | PreambleFailure) => void,
  check?: HeaderCheck
): void {
  // The bytes so far (`buffered`, joined) and the chunks since that no parse could use yet
  // (`waiting`): a client sending a byte at a time made a concat and a parse from the start per
  // byte (quadratic, ~27 ms of a worker for one 16 KiB ClientHello). The usual connection, its
  // ClientHello in its first chunk, allocates nothing here.
  let buffered: Buffer | undefined
  let waiting: Buffer[] | undefined
  let total = 0
  /** Bytes the ClientHello needs at least, as its record headers say (0: unknown). */
  let wanted = 0
  let proxy: ProxyHeader | undefined
  let proxyPending = proxyMode !== 'off'
  let finished = false

  const finish = (result: Preamble | PreambleFailure, rest?: Buffer): void => {
    if (finished) return
    finished = true
    socket.removeListener('data', onData)
    socket.removeListener('end', onEnd)
    socket.removeListener('close', onEnd)
    if (rest !== undefined) {
      socket.pause()
      if (rest.length > 0) socket.unshift(rest)
    }
    done(result)
  }

  const onData = (chunk: Buffer): void => {
    total += chunk.length
    if (!proxyPending && total < wanted) {
      (waiting ??= []).push(chunk)
      return
    }
    if (buffered === undefined || buffered.length === 0) {
      buffered = waiting === undefined ? chunk : Buffer.concat([...waiting, chunk], total)
    } else {
      buffered = Buffer.concat([buffered, ...(waiting ?? []), chunk], total)
    }
    waiting = undefined
    if (proxyPending && proxyMode !== 'off') {
      const parsed = parseProxyHeader(buffered, proxyMode)
      if (parsed.status === 'incomplete') return
      if (parsed.status === 'error') return finish({ kind: 'proxy', reason: parsed.reason })
      if (parsed.status === 'ok') {
        proxy = parsed.header
        buffered = buffered.subarray(parsed.length)
        total = buffered.length
      }
      proxyPending = false
      if (check !== undefined) {
        const refused = check(proxy, buffered.length)
        if (refused !== undefined) return finish(refused)
      }
      if (buffered.length === 0) return
    }
    const hello = parseClientHello(buffered)
    if (hello.status === 'incomplete') {
      wanted = hello.needBytes ?? 0
      return
    }
    if (hello.status === 'error' && hello.reason === 'not_tls') return finish({ kind: 'not_tls' })
    const preamble: Preamble = {}
    if (proxy !== undefined) preamble.proxy = proxy
    if (hello.status === 'ok') preamble.hello = hello.hello
    finish(preamble, buffered)
  }
  const onEnd = (): void => {
    // Nothing buffered: no byte at all, or a whole PROXY header and nothing after it.
    if (total === 0) {
      finish(noTls(proxy))
    } else {
      finish({ kind: 'closed' })
    }
  }

  socket.on('data', onData)
  // `on`, not `once`: finish() removes them, and a `once` wrapper per listener and connection
  // is an allocation and a slower removal for nothing.
  socket.on('end', onEnd)
  socket.on('close', onEnd)
}

/** Closed before its first TLS byte, after `header` (if any). */
export function noTls (header: ProxyHeader | undefined): PreambleFailure {
  return { kind: 'no_tls', header: header === undefined ? 'none' : header.command === 'local' ? 'local' : 'proxy' }
}

export function isFailure (result: Preamble | PreambleFailure): result is PreambleFailure {
  return 'kind' in result
}
