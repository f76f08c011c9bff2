/**
 * `show info`: one `Name: value` per line. The figures a node derives its agent state and
 * weight from, when HAProxy terminates TLS on it. Fields are looked up by name; a field an
 * older or newer HAProxy lacks reads as undefined.
 */
export interface HaproxyInfo {
  pid: number | undefined
  /** Process start, Unix seconds: with the pid, tells a restarted HAProxy apart. */
  startTime: number | undefined
  version: string | undefined
  /** 1 while a soft stop (reload) is under way. */
  stopping: boolean
  /** Percent of the last second the threads were idle. */
  idlePct: number | undefined
  currConns: number | undefined
  maxConn: number | undefined
  currSslConns: number | undefined
  /** SSL sessions per second (full and resumed handshakes), over the last second. */
  sslRate: number | undefined
  /** Full handshakes (key computations) per second on the frontends. */
  sslFrontendKeyRate: number | undefined
  sslFrontendSessionReusePct: number | undefined
  /** Cumulative lookups in HAProxy's TLS session cache (session IDs), and their misses. */
  sslCacheLookups: number | undefined
  sslCacheMisses: number | undefined
  fields: Record<string, string>
}

/** The HAProxy process `info` is from: a restart or reload makes another pid and start time. */
export function haproxyProcess (info: HaproxyInfo): string { return `${String(info.pid)}@${String(info.startTime)}` }

function num (value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined
  const n = Number(value)
  return Number.isFinite(n) ? n : undefined
}

export function parseShowInfo (text: string): HaproxyInfo {
  const fields: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    fields[line.slice(0, colon).trim()] = line.slice(colon + 1).trim()
  }
  if (fields.Name === undefined) throw new Error(`show info: no "Name:" line in ${JSON.stringify(text.slice(0, 120))}`)
  return {
    pid: num(fields.Pid),
    startTime: num(fields.Start_time_sec),
    version: fields.Version,
    stopping: fields.Stopping === '1',
    idlePct: num(fields.Idle_pct),
    currConns: num(fields.CurrConns),
    maxConn: num(fields.Maxconn),
    currSslConns: num(fields.CurrSslConns),
    sslRate: num(fields.SslRate),
    sslFrontendKeyRate: num(fields.SslFrontendKeyRate),
    sslFrontendSessionReusePct: num(fields.SslFrontendSessionReuse_pct),
    sslCacheLookups: num(fields.SslCacheLookups),
    sslCacheMisses: num(fields.SslCacheMisses),
    fields
  }
}

/**
 * How busy HAProxy is, 0..1: the larger of its CPU busy share (100 - Idle_pct) and its
 * connection slots in use (CurrConns / Maxconn). What the weight is computed from.
 */
export function haproxyBusyRatio (info: HaproxyInfo): number {
  const cpu = info.idlePct !== undefined ? 1 - info.idlePct / 100 : 0
  const slots = info.currConns !== undefined && info.maxConn !== undefined && info.maxConn > 0 ? info.currConns / info.maxConn : 0
  return Math.min(1, Math.max(0, cpu, slots))
}
