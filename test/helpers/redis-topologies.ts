import { spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { spawnChild, stopChild } from '../../src/lab/processes.js'
import { RedisServer, type RedisTls } from '../../src/lab/redis-server.js'
import { onLines } from '../../src/util/lines.js'
import { eventually } from './node-process.js'
import { freePort, freePorts } from './ports.js'

/** A CA, a server certificate for the data nodes and Sentinels, and the client certificate they present to each other (and redis-cli presents). */
export interface SentinelSetTls {
  caFile: string
  serverCert: string
  serverKey: string
  clientCert: string
  clientKey: string
}

/** One redis-cli command against HOST:PORT (over TLS with `tls`), its trimmed text output. */
export function redisCli (host: string, port: number, args: string[], tls?: SentinelSetTls): string {
  const tlsArgs = tls === undefined ? [] : ['--tls', '--cacert', tls.caFile, '--cert', tls.clientCert, '--key', tls.clientKey]
  const result = spawnSync('redis-cli', ['-h', host, '-p', String(port), ...tlsArgs, '--raw', ...args], { encoding: 'utf8', timeout: 20_000 })
  if (result.status !== 0) throw new Error(`redis-cli -p ${port} ${args.join(' ')}: ${result.stderr}${result.stdout}`)
  return result.stdout.trim()
}

/**
 * A master, its replica and one Sentinel watching them as MASTER (quorum 1), as Debian's
 * redis-server runs them (`redis-server FILE --sentinel` is redis-sentinel).
 *
 * With `tls`, every one of them listens on TLS only and asks clients for a certificate; the
 * replica replicates and the Sentinel monitors over TLS (tls-replication yes), presenting the
 * client certificate (a server certificate is for serverAuth only).
 */
export async function startSentinelSet (dir: string, master: string, opts: { host?: string; primaryArgs?: string[]; tls?: SentinelSetTls } = {}): Promise<{
  primary: RedisServer
  replica: RedisServer
  sentinelPort: number
  url: string
  /** HOST:PORT of the master as the Sentinel names it now. */
  masterAddress: () => string
  stop: () => Promise<void>
}> {
  const host = opts.host ?? '127.0.0.1'
  const tls = opts.tls
  const serverTls: RedisTls | undefined = tls === undefined ? undefined : { certFile: tls.serverCert, keyFile: tls.serverKey, caFile: tls.caFile, authClients: true }
  const outgoing = tls === undefined ? [] : ['--tls-replication', 'yes', '--tls-client-cert-file', tls.clientCert, '--tls-client-key-file', tls.clientKey]
  const primary = await RedisServer.start(host, { args: [...outgoing, ...opts.primaryArgs ?? []], ...(serverTls !== undefined ? { tls: serverTls } : {}) })
  const replica = await RedisServer.start(host, { args: [...outgoing, '--replicaof', host, String(primary.port)], ...(serverTls !== undefined ? { tls: serverTls } : {}) })
  await eventually(() => redisCli(host, replica.port, ['INFO', 'replication'], tls).includes('master_link_status:up'), 10_000, 'the replica in sync')
  const sentinelPort = await freePort(host)
  const conf = path.join(dir, `sentinel-${sentinelPort}.conf`)
  const listen = tls === undefined
    ? [`port ${sentinelPort}`]
    : ['port 0', `tls-port ${sentinelPort}`, `tls-cert-file ${tls.serverCert}`, `tls-key-file ${tls.serverKey}`, `tls-ca-cert-file ${tls.caFile}`,
        'tls-auth-clients yes', 'tls-replication yes', `tls-client-cert-file ${tls.clientCert}`, `tls-client-key-file ${tls.clientKey}`]
  // The Sentinel rewrites its file (what it learns): it must be its own and writable.
  fs.writeFileSync(conf, [
    ...listen, `bind ${host}`, `dir ${dir}`,
    `sentinel monitor ${master} ${host} ${primary.port} 1`,
    `sentinel down-after-milliseconds ${master} 1000`,
    `sentinel failover-timeout ${master} 5000`, ''
  ].join('\n'))
  const sentinel: ChildProcess = spawnChild('redis-server', [conf, '--sentinel'])
  let output = ''
  const up = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 10_000)
    onLines(sentinel.stdout, (line) => { output += line + '\n'; if (line.includes('+slave ')) { clearTimeout(timer); resolve(true) } })
    sentinel.once('exit', () => { clearTimeout(timer); resolve(false) })
  })
  const stop = async (): Promise<void> => {
    await stopChild(sentinel, 3000)
    await replica.stop()
    await primary.stop()
  }
  if (!up) { await stop(); throw new Error(`redis sentinel did not find the replica:\n${output}`) }
  return {
    primary,
    replica,
    sentinelPort,
    url: `${tls === undefined ? 'redis' : 'rediss'}+sentinel://${host}:${sentinelPort}/${master}`,
    masterAddress: () => redisCli(host, sentinelPort, ['SENTINEL', 'get-master-addr-by-name', master], tls).split('\n').join(':'),
    stop
  }
}

/** Three Cluster masters (no replicas) holding every slot, as `redis-cli --cluster create` makes them. */
export async function startCluster (dir: string, host = '127.0.0.1'): Promise<{ masters: RedisServer[]; url: string; stop: () => Promise<void> }> {
  const masters: RedisServer[] = []
  const stop = async (): Promise<void> => { await Promise.all(masters.map(async (m) => await m.stop())) }
  try {
    // Each node's cluster bus port is given: by default it is the port + 10000, which may be
    // taken, or past 65535.
    const busPorts = await freePorts(3, host)
    for (const [i, busPort] of busPorts.entries()) {
      masters.push(await RedisServer.start(host, { args: ['--cluster-enabled', 'yes', '--cluster-port', String(busPort), '--cluster-config-file', path.join(dir, `cluster-nodes-${i}.conf`), '--cluster-node-timeout', '5000'] }))
    }
    redisCli(host, (masters[0] as RedisServer).port, ['--cluster', 'create', ...masters.map((m) => `${host}:${m.port}`), '--cluster-replicas', '0', '--cluster-yes'])
    for (const m of masters) await eventually(() => redisCli(host, m.port, ['CLUSTER', 'INFO']).includes('cluster_state:ok'), 15_000, `cluster state ok on ${m.port}`)
  } catch (err) {
    await stop()
    throw err
  }
  return { masters, url: `redis+cluster://${host}:${(masters[0] as RedisServer).port}`, stop }
}
