/**
 * tlsfleet's one error vocabulary, in the style of undici's `UND_ERR_*` classes: every error
 * the project raises on purpose is a TlsfleetError with a stable `code` (scripts and log
 * queries may rely on it; docs/operations.md lists them) and the exit status the CLI uses
 * for it. The message names the option, file or address involved and what to do about it.
 *
 * Exit statuses: 2 = the command or its configuration must change; 3 = the machine is not
 * ready for it (an address taken or not local, a port needing privileges); 1 = anything else.
 */
export const EXIT_CONFIG = 2
export const EXIT_ENVIRONMENT = 3
export const EXIT_FAILURE = 1

export class TlsfleetError extends Error {
  constructor (
    readonly code: string,
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
    options?: { cause?: unknown }
  ) {
    super(message, options)
    this.name = new.target.name
  }
}

/** A refused configuration; `message` lists every problem, each naming key, value and expectation. */
export class ConfigError extends TlsfleetError {
  constructor (readonly problems: string[]) {
    super('TLSFLEET_ERR_CONFIG', problems.length === 1 ? problems[0] as string : `invalid configuration: ${problems.join('; ')}`, EXIT_CONFIG)
  }
}

/** Options that are each valid but do not work together (e.g. --haproxy-server without --haproxy-socket). */
export class ConfigConflictError extends TlsfleetError {
  constructor (message: string) { super('TLSFLEET_ERR_CONFIG_CONFLICT', message, EXIT_CONFIG) }
}

/** A wrong command line: commander's usage errors for any command (cli/usage-errors.ts), and the checks of lab, demo-backend and bench. */
export class UsageError extends TlsfleetError {
  constructor (message: string) { super('TLSFLEET_ERR_USAGE', message, EXIT_CONFIG) }
}

export class CertificateError extends TlsfleetError {
  /** `what`: how the path is named in the message (a --cert-dir is not a certificate). */
  constructor (readonly path: string, readonly problem: string, what = 'certificate') { super('TLSFLEET_ERR_CERTIFICATE', `${what} "${path}": ${problem}`, EXIT_CONFIG) }

  /** The same refusal, the file named by the option that gave it (`--cert`, `TLSFLEET_CERT`, a YAML key). */
  namedBy (what: string): CertificateError { return new CertificateError(this.path, this.problem, what) }
}

/** A farm secret file refused (at start, or at SIGHUP); the message names the file and the problem. */
export class FarmSecretError extends TlsfleetError {
  constructor (readonly file: string, readonly problem: string) { super('TLSFLEET_ERR_FARM_SECRET', `--sync-secret-file "${file}": ${problem}`, EXIT_CONFIG) }
}

/** The admin token file was refused; the message names the file and the problem. */
export class AdminTokenError extends TlsfleetError {
  constructor (message: string, options?: { cause?: unknown }) { super('TLSFLEET_ERR_ADMIN_TOKEN', message, EXIT_CONFIG, options) }
}

/** The sync replay state in --state-dir cannot be opened (replay-state.ts): the node refuses to start without it. */
export class SyncStateError extends TlsfleetError {
  constructor (file: string, cause: unknown) {
    super('TLSFLEET_ERR_SYNC_STATE', `sync replay state "${file}": ${(cause as Error).message} (--state-dir must be a directory this node can write)`, EXIT_ENVIRONMENT, { cause })
  }
}

/** What went wrong when a listener could not bind, by errno: the code and what to do. */
const LISTEN_PROBLEMS: Record<string, { code: string; problem: string; advice: string }> = {
  EADDRINUSE: { code: 'TLSFLEET_ERR_ADDRESS_IN_USE', problem: 'is already in use by another process', advice: 'stop that process or give' },
  EADDRNOTAVAIL: { code: 'TLSFLEET_ERR_ADDRESS_NOT_AVAILABLE', problem: 'is not an address of this machine', advice: 'give' },
  EACCES: { code: 'TLSFLEET_ERR_LISTEN_DENIED', problem: 'needs privileges this process lacks (ports below 1024 need root or CAP_NET_BIND_SERVICE)', advice: 'grant them or give' },
  EPERM: { code: 'TLSFLEET_ERR_LISTEN_DENIED', problem: 'is not permitted to this process', advice: 'give' }
}

/**
 * A listener (TLS, admin, agent, sync) that cannot bind: names the address and the option
 * that sets it. The errno (`EADDRINUSE`, ...) stays on `cause`.
 */
export class ListenError extends TlsfleetError {
  /** `connectionsOnly`: EADDRINUSE with no listener on the port, only this machine's connections from it. */
  constructor (readonly option: string, readonly address: string, cause: unknown, connectionsOnly = false) {
    const errno = (cause as { code?: unknown } | null)?.code
    const known = typeof errno === 'string' ? LISTEN_PROBLEMS[errno] : undefined
    const port = address.slice(address.lastIndexOf(':') + 1)
    const message = connectionsOnly && errno === 'EADDRINUSE'
      ? `${address} is held by connections of this machine from port ${port} (no process listens on it: connections in TIME-WAIT or open ones, see ss -tan 'sport = :${port}'): wait for them to end or give another ${option}`
      : known !== undefined
      ? `${address} ${known.problem}: ${known.advice} another ${option}`
      : `cannot listen on ${address} (${option}): ${(cause as Error | null)?.message ?? String(cause)}`
    super(known?.code ?? 'TLSFLEET_ERR_LISTEN', message, EXIT_ENVIRONMENT, { cause })
  }
}

/** --user/--group cannot be applied: not started as root, or the switch failed. */
export class PrivilegeError extends TlsfleetError {
  constructor (message: string) { super('TLSFLEET_ERR_PRIVILEGES', message, EXIT_ENVIRONMENT) }
}

/** Workers that exit before they listen, for a reason other than a busy address. */
export class WorkerStartError extends TlsfleetError {
  constructor (message: string) { super('TLSFLEET_ERR_WORKER_START', message, EXIT_FAILURE) }
}

/** HAProxy's Runtime API refused a command or answered something unexpected. */
export class HaproxyRuntimeError extends TlsfleetError {
  /**
   * `lost`: HAProxy closed the connection with no reply or part of one (it stopped or is
   * restarting), as opposed to answering something tlsfleet cannot use.
   */
  constructor (readonly command: string, readonly output: string, message?: string, readonly lost = false) {
    super('TLSFLEET_ERR_HAPROXY_RUNTIME', message ?? `haproxy rejected "${command}": ${output.trim() === '' ? '(empty reply)' : output.trim()}`)
  }
}

/**
 * The local HAProxy a node companions (`--terminator haproxy`) is not set up as tlsfleet needs:
 * a socket below level admin, no `tls-ticket-keys` on its bind line, another key file than
 * `--terminator-keys`, keys of another size; or `tlsfleet haproxy-keys` cannot write its file.
 * The message names the option or file and what to change; `brief`, when given, says it in a
 * few words for HAProxy's agent line (the full message goes to the log and the status).
 */
export class TerminatorError extends TlsfleetError {
  constructor (message: string, readonly brief?: string) { super('TLSFLEET_ERR_TERMINATOR', message, EXIT_CONFIG) }
}

/** A refusal by the admin API, with the HTTP status it answers with. */
export class AdminRequestError extends TlsfleetError {
  constructor (readonly statusCode: number, readonly error: string, message: string) {
    super('TLSFLEET_ERR_ADMIN_REQUEST', message)
  }
}

/** The operator CLI (status, drain, ...) could not do what it was asked (its token file is refused with AdminTokenError). */
export class AdminClientError extends TlsfleetError {
  constructor (message: string, exitCode: number = EXIT_FAILURE) { super('TLSFLEET_ERR_ADMIN_CLIENT', message, exitCode) }
}

/** The lab or the bench cannot run here (a missing tool, a busy port) or was asked wrongly. */
export class LabError extends TlsfleetError {
  constructor (message: string) { super('TLSFLEET_ERR_LAB', message) }
}

/** Every code above, for the docs check (test/unit/errors.test.ts). */
export const ERROR_CODES = [
  'TLSFLEET_ERR_CONFIG', 'TLSFLEET_ERR_CONFIG_CONFLICT', 'TLSFLEET_ERR_USAGE', 'TLSFLEET_ERR_CERTIFICATE',
  'TLSFLEET_ERR_FARM_SECRET', 'TLSFLEET_ERR_ADMIN_TOKEN', 'TLSFLEET_ERR_ADDRESS_IN_USE',
  'TLSFLEET_ERR_ADDRESS_NOT_AVAILABLE', 'TLSFLEET_ERR_LISTEN_DENIED', 'TLSFLEET_ERR_LISTEN',
  'TLSFLEET_ERR_PRIVILEGES', 'TLSFLEET_ERR_WORKER_START', 'TLSFLEET_ERR_HAPROXY_RUNTIME', 'TLSFLEET_ERR_ADMIN_REQUEST',
  'TLSFLEET_ERR_ADMIN_CLIENT', 'TLSFLEET_ERR_LAB', 'TLSFLEET_ERR_TERMINATOR', 'TLSFLEET_ERR_SYNC_STATE'
] as const
