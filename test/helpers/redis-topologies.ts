import { spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { spawnChild, stopChild } from '../../src/lab/processes.js'
import { RedisServer } from '../../src/lab/redis-server.js'
import { onLines } from '../../src/util/lines.js'
import { eventually } from './node-process.js'
import { freePort, freePorts } from './ports.js'

/** One redis-cli command against HOST:PORT, its trimmed text output. */
export function redisCli (host: string, port: number, args: string[]): string {
  const result = spawnSync('redis-cli', ['-h', host, '-p', String(port), '--raw', ...args], { encoding: 'utf8', timeout: 20_000 })
  if (result.status !== 0) throw new Error(`redis-cli -p ${port} ${args.join(' ')}: ${result.stderr}${result.stdout}`)
  return result.stdout.trim()
}

/**
 * A master, its replica and one Sentinel watching them as MASTER (quorum 1), as Debian's
 * redis-server runs them (`redis-server FILE --sentinel` is redis-sentinel).
 */
export async function startSentinelSet (dir: string, master: string, opts: { host?: string; primaryArgs?: string[] } = {}): Promise<{
  primary: RedisServer
  replica: RedisServer
  sentinelPort: number
  url: string
  /** HOST:PORT of the master as the Sentinel names it now. */
  masterAddress: () => string
  stop: () => Promise<void>
}> {
  const host = opts.host ?? '127.0.0.1'
  const primary = await RedisServer.start(host, { args: opts.primaryArgs ?? [] })
  const replica = await RedisServer.start(host, { args: ['--replicaof', host, String(primary.port)] })
  await eventually(() => redisCli(host, replica.port, ['INFO', 'replication']).includes('master_link_status:up'), 10_000, 'the replica in sync')
  const sentinelPort = await freePort(host)
  const conf = path.join(dir, `sentinel-${sentinelPort}.conf`)
  // The Sentinel rewrites its file (what it learns): it must be its own and writable.
  fs.writeFileSync(conf, [
    `port ${sentinelPort}`, `bind ${host}`, `dir ${dir}`,
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
    url: `redis+sentinel://${host}:${sentinelPort}/${master}`,
    masterAddress: () => redisCli(host, sentinelPort, ['SENTINEL', 'get-master-addr-by-name', master]).split('\n').join(':'),
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
