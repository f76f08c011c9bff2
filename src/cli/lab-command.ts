import { Command, Option } from 'commander'
import { parseHostPort } from '../config/host-port.js'
import { TERMINATOR_MODES } from '../lab/farm.js'
import { ACTS, parseActs, parseKinds, runLab } from '../lab/lab.js'
import { CLIENT_KINDS } from '../lab/returning-clients.js'
import { UsageError } from '../errors.js'
import { checkReportPath } from '../report/html-report.js'
import { numberArgument } from './number-argument.js'

function positiveInt (name: string, min: number, max: number): (value: string) => number {
  return (value) => {
    const n = numberArgument(name, value, min, max)
    if (typeof n === 'string') throw new UsageError(n)
    return n
  }
}

/** `tlsfleet lab`: the docker-compose farm as local processes on loopback, and the failover scene. */
export function labCommand (): Command {
  return new Command('lab')
    .description('run a farm on loopback: a real haproxy, 3 tlsfleet nodes sharing sessions, 2 demo backends; --failover plays the failover scene')
    .option('--listen <HOST:PORT>', 'HAProxy\'s client-facing address', '127.0.0.10:8443')
    .addOption(new Option('--sync <MODE>', 'how the nodes share sessions; off = each node alone (the farm without tlsfleet\'s sharing)').choices(['unicast', 'multicast', 'off']).default('unicast'))
    .addOption(new Option('--terminator <MODE>', 'who terminates TLS on the nodes: tlsfleet, haproxy (a local HAProxy per node, tlsfleet as its companion), or mixed (node1 and node3 haproxy, node2 tlsfleet)').choices([...TERMINATOR_MODES]).default('tlsfleet'))
    .option('--workers <N>', 'workers per node', positiveInt('--workers', 1, 64), 1)
    .option('--cert <FILE>', 'PEM (key + certificate) for every node (default: a self-signed RSA-2048 one)')
    .addOption(new Option('--agent <MODE>', 'HAProxy agent-check on the nodes').choices(['on', 'off']).default('on'))
    .option('--failover', 'play the failover scene: steady load, node1 killed, restarted, node2 drained and stopped; then stop', false)
    .option('--acts <LIST>', `acts of the scene, in order (${ACTS.join(',')})`, ACTS.join(','))
    .option('--act-seconds <S>', 'seconds of load before the first act and between acts', positiveInt('--act-seconds', 1, 600), 5)
    .option('--clients <N>', 'returning clients (each keeps its session and reconnects)', positiveInt('--clients', 1, 10_000), 60)
    .option('--rate <N>', 'connections per second over all clients', positiveInt('--rate', 1, 100_000), 120)
    .option('--clients-kind <LIST>', `client kinds, spread evenly (${CLIENT_KINDS.join(',')})`, CLIENT_KINDS.join(','))
    .option('--load', 'without --failover: also run the returning-client load', false)
    .option('--duration <S>', 'without --failover: stop after S seconds (0 = until Ctrl-C)', positiveInt('--duration', 0, 86_400), 0)
    .option('--target <HOST:PORT>', 'no farm: only run the returning-client load against HOST:PORT (the docker compose load client)')
    .option('--json', 'print the scene report as JSON on stdout (human output goes to stderr)', false)
    .option('--report <FILE>', 'with --failover: also write the scene as one self-contained HTML file (charts per node, the JSON report inline)')
    .action(async (opts: { listen: string; sync: 'unicast' | 'multicast' | 'off'; terminator: 'tlsfleet' | 'haproxy' | 'mixed'; workers: number; cert?: string; agent: 'on' | 'off'; failover: boolean; acts: string; actSeconds: number; clients: number; rate: number; clientsKind: string; load: boolean; duration: number; json: boolean; target?: string; report?: string }) => {
      const listen = parseHostPort(opts.listen)
      if (typeof listen === 'string') throw new UsageError(`--listen: ${JSON.stringify(opts.listen)}: ${listen}`)
      const target = opts.target !== undefined ? parseHostPort(opts.target) : undefined
      if (typeof target === 'string') throw new UsageError(`--target: ${JSON.stringify(opts.target)}: ${target}`)
      if (opts.report !== undefined && !opts.failover) throw new UsageError('--report needs --failover (the report is the failover scene\'s)')
      // Options of another mode would be dropped without a word: refused instead.
      if (opts.json && !opts.failover) throw new UsageError('--json needs --failover (the JSON is the failover scene\'s report)')
      if (target !== undefined && opts.failover) throw new UsageError('--target runs the load client alone, against a farm elsewhere: --failover needs the lab\'s own farm (give one or the other)')
      if (opts.failover && opts.load) throw new UsageError('--load is for a lab without --failover: the scene runs its own load')
      if (opts.failover && opts.duration !== 0) throw new UsageError('--duration is for a lab without --failover: the scene lasts as long as its acts (--acts, --act-seconds)')
      const report = opts.report !== undefined ? checkReportPath(opts.report) : undefined
      await runLab({
        listen,
        sync: opts.sync,
        terminator: opts.terminator,
        workers: opts.workers,
        ...(opts.cert !== undefined ? { cert: opts.cert } : {}),
        agent: opts.agent,
        failover: opts.failover,
        acts: parseActs(opts.acts),
        actSeconds: opts.actSeconds,
        clients: opts.clients,
        rate: opts.rate,
        kinds: parseKinds(opts.clientsKind),
        load: opts.load,
        duration: opts.duration,
        json: opts.json,
        ...(target !== undefined ? { target } : {}),
        ...(report !== undefined ? { report } : {})
      })
      process.exit(0)
    })
}
