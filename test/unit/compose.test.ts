import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import vm from 'node:vm'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config/load.js'
import { OPTION_KEYS, envName } from '../../src/config/options.js'

// Docker cannot run where the tests run: check what can be checked without it.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')

interface Service {
  image?: string
  build?: { context: string; dockerfile?: string }
  command?: string[]
  entrypoint?: string[]
  environment?: Record<string, string>
  volumes?: string[]
  depends_on?: Record<string, unknown>
  networks?: string[] | Record<string, { aliases?: string[] } | null>
  healthcheck?: { disable?: boolean }
}
interface Compose { services: Record<string, Service>; volumes?: Record<string, unknown> }

function load (file: string): Compose {
  return parse(fs.readFileSync(path.join(ROOT, file), 'utf8'), { merge: true }) as Compose
}

/** `docker compose -f a -f b` merging, as far as these files use it (maps merged, new services added). */
function merged (base: Compose, override: Compose): Compose {
  const out = structuredClone(base)
  for (const [name, svc] of Object.entries(override.services)) {
    const target = out.services[name]
    if (target === undefined) { out.services[name] = svc; continue }
    target.environment = { ...target.environment, ...svc.environment }
    target.depends_on = { ...target.depends_on, ...svc.depends_on }
  }
  return out
}

/** The network aliases a service answers to on `network`. */
function aliases (svc: Service | undefined, network: string): string[] {
  const networks = svc?.networks
  if (networks === undefined || Array.isArray(networks)) return []
  return networks[network]?.aliases ?? []
}

const compose = load('docker-compose.yml')
const multicast = merged(compose, load('docker-compose.multicast.yml'))
const store = merged(compose, load('docker-compose.store.yml'))
const NODES = ['node1', 'node2', 'node3']

test('docker-compose.yml has HAProxy, three nodes, two backends and a load client', () => {
  for (const name of ['haproxy', ...NODES, 'web1', 'web2', 'load', 'farm-init']) assert.ok(name in compose.services, `missing service ${name}`)
  assert.match(compose.services.haproxy?.image ?? '', /^haproxy:\d+\.\d+/, 'the official haproxy image, pinned to a branch')
  for (const [name, svc] of Object.entries(compose.services)) {
    if (name === 'haproxy') continue
    assert.equal(svc.image, 'tlsfleet:lab', name)
    assert.equal(svc.build?.context, '.', name)
    assert.ok(fs.existsSync(path.join(ROOT, svc.build?.dockerfile ?? 'Dockerfile')), `${name}: Dockerfile missing`)
    for (const dep of Object.keys(svc.depends_on ?? {})) assert.ok(dep in compose.services, `${name} depends on unknown ${dep}`)
  }
})

test('every file the compose files mount exists, and the mounted HAProxy config is haproxy/haproxy.cfg and passes haproxy -c', () => {
  const mounts = Object.values(compose.services).flatMap((s) => s.volumes ?? [])
  for (const mount of mounts) {
    const source = mount.split(':')[0] as string
    if (source.startsWith('.') || source.startsWith('/')) assert.ok(fs.existsSync(path.join(ROOT, source)), `mounted file missing: ${source}`)
    else assert.ok(source in (compose.volumes ?? {}), `named volume not declared: ${source}`)
  }
  const cfgMount = compose.services.haproxy?.volumes?.find((v) => v.endsWith(':/usr/local/etc/haproxy/haproxy.cfg:ro'))
  assert.equal(cfgMount?.split(':')[0], './haproxy/haproxy.cfg')
  const result = spawnSync('haproxy', ['-c', '-f', path.join(ROOT, 'haproxy/haproxy.cfg')], { encoding: 'utf8', timeout: 15_000 })
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`)
})

test('the nodes\' settings are valid tlsfleet node options, and they match haproxy.cfg and each other', () => {
  const cfg = fs.readFileSync(path.join(ROOT, 'haproxy/haproxy.cfg'), 'utf8')
  const known = new Set(OPTION_KEYS.map((k) => envName(k)))
  for (const file of [compose, multicast, store]) {
    for (const name of NODES) {
      const env = file.services[name]?.environment ?? {}
      for (const key of Object.keys(env)) assert.ok(known.has(key), `${name}: ${key} is not a tlsfleet node option`)
      const config = loadConfig({ env })
      assert.equal(config.nodeId, name)
      assert.equal(config.proxyProtocolIn, 'v2', 'haproxy.cfg sends PROXY v2')
      assert.deepEqual(config.listen, [{ host: '0.0.0.0', port: 8443 }])
      assert.ok(cfg.includes(`server ${name} ${name}:8443`), `haproxy.cfg has no server ${name}`)
      const agent = config.agentListen
      assert.ok(agent !== 'off' && agent.port === 8444 && /agent-port 8444/.test(cfg), 'agent on 8444, where haproxy.cfg looks')
      assert.notEqual(config.backend, 'demo')
      if (config.backend !== 'demo') assert.ok(config.backend.host in compose.services, `backend ${config.backend.host} is not a service`)
      assert.equal(config.syncSecretFile[0], '/farm/farm.key')
      assert.equal(config.cert[0], '/farm/self-signed.pem')
      assert.equal(config.adminListen.port, 8445, 'the Dockerfile HEALTHCHECK polls 127.0.0.1:8445/health')
      const sync = config.syncListen
      if (file === store) {
        // The store instead of the sync: a Redis-protocol service of this file, the farm secret to seal with.
        assert.equal(sync, 'off')
        assert.deepEqual(config.syncPeer, [])
        const target = config.sessionStore
        assert.ok(target !== 'off' && target.mode === 'standalone')
        const host = target.hosts[0]?.host ?? ''
        assert.ok(host in file.services, `store ${host} is not a service`)
        assert.ok(host in (file.services[name]?.depends_on ?? {}), `${name} does not wait for ${host}`)
        assert.deepEqual(aliases(file.services[host], 'farm'), [], 'the store is not a sync peer')
        assert.ok(file.services[host]?.networks !== undefined, 'the store is on the farm network')
        continue
      }
      assert.ok(sync !== 'off')
      assert.equal(config.sessionStore, 'off')
      if (file === compose) {
        // Peers by DNS: one name every node answers to (so compose can add nodes), on the sync port.
        assert.deepEqual(config.syncPeer, [{ dns: 'tlsfleet-nodes', port: sync.port }])
        const members = Object.entries(file.services).filter(([, svc]) => aliases(svc, 'farm').includes('tlsfleet-nodes')).map(([n]) => n)
        assert.deepEqual(members.sort(), NODES, 'every node, and only the nodes, answer to the peer name')
      } else {
        assert.match(sync.host, /^239\./, 'multicast group')
        assert.deepEqual(config.syncPeer, [])
      }
    }
  }
})

test('the load client and the init job are sound', () => {
  const loadCmd = compose.services.load?.command ?? []
  assert.equal(loadCmd[0], 'lab')
  assert.equal(loadCmd[loadCmd.indexOf('--target') + 1], 'haproxy:443')
  const init = compose.services['farm-init']
  assert.deepEqual(init?.entrypoint, ['node', '-e'])
  const script = init?.command?.[0] ?? ''
  assert.doesNotThrow(() => new vm.Script(script), 'the init script compiles')
  assert.match(script, /\/app\/dist\/src\/tls\/self-signed\.js/)
  assert.ok(fs.existsSync(path.join(ROOT, 'src/tls/self-signed.ts')))
  assert.match(script, /0o600/, 'the farm secret is written mode 0600')
  for (const web of ['web1', 'web2']) assert.equal(compose.services[web]?.command?.[0], 'demo-backend')
})

test('Dockerfile: multi-stage, non-root, health check on /health, and every file it copies exists', () => {
  const text = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
  const lines = text.split('\n').filter((l) => !l.trim().startsWith('#'))
  const froms = lines.filter((l) => /^FROM /.test(l))
  assert.ok(froms.length >= 2, 'multi-stage')
  for (const from of froms) assert.match(from, /^FROM node:24-/, 'Node 24 official base image')
  const lastStage = lines.slice(lines.lastIndexOf(froms[froms.length - 1] as string))
  const user = lastStage.filter((l) => /^USER /.test(l)).pop()
  assert.ok(user !== undefined && !/^USER (root|0)\b/.test(user), 'the runtime stage runs as a non-root user')
  assert.match(text, /HEALTHCHECK[\s\S]*127\.0\.0\.1:8445\/health/)
  const ignored = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '')
  for (const line of lines.filter((l) => /^COPY /.test(l) && !l.includes('--from='))) {
    const sources = line.replace(/^COPY\s+/, '').split(/\s+/).slice(0, -1)
    for (const source of sources) {
      assert.ok(fs.existsSync(path.join(ROOT, source)), `COPY source missing: ${source}`)
      assert.ok(!ignored.includes(source), `COPY source excluded by .dockerignore: ${source}`)
    }
  }
  for (const stagePath of [...text.matchAll(/COPY --from=build \/src\/(\S+)/g)].map((m) => m[1] as string)) {
    // dist/src and dist/benchmarks come from the tsc build of src/ and benchmarks/.
    assert.ok(fs.existsSync(path.join(ROOT, stagePath.replace(/^dist\//, ''))), `built from a missing folder: ${stagePath}`)
  }
})
