import assert from 'node:assert/strict'
import { test } from 'node:test'
import { benchSettings, type SettingsInput } from '../../benchmarks/settings.js'

const given: SettingsInput = {
  suites: [], certs: ['rsa', 'ecdsa'], targets: ['node', 'tlsfleet'], profiles: ['full-1.2'], durationSeconds: 5, count: 20000,
  processes: 2, concurrency: 8, rounds: 1, warmupSeconds: 3, workers: 1, request: true, costTargets: ['node', 'tlsfleet'], costProfiles: ['resume-1.2-ticket'],
  costCount: 200, costWarmup: 2000, syncCostUpdates: 20000, syncCostRefused: 5000, sessions: 100000, soakSeconds: 600, soakRssMb: 256
}

test('the settings line names only what the suites that ran read', () => {
  assert.deepEqual(benchSettings({ ...given, suites: ['sync-cost'] }), { suites: ['sync-cost'], syncCostUpdates: 20000, syncCostRefused: 5000 })
  assert.deepEqual(benchSettings({ ...given, suites: ['memory'] }), { suites: ['memory'], sessions: 100000 })
  assert.deepEqual(benchSettings({ ...given, suites: ['handshake-cost'] }),
    { suites: ['handshake-cost'], certs: ['rsa', 'ecdsa'], costTargets: ['node', 'tlsfleet'], costProfiles: ['resume-1.2-ticket'], costCount: 200, costWarmup: 2000 })
  assert.deepEqual(benchSettings({ ...given, suites: ['sync'] }), { suites: ['sync'], certs: ['rsa', 'ecdsa'], count: 20000 })
})

test('the handshake suite keeps every load setting, and several suites merge theirs', () => {
  const both = benchSettings({ ...given, suites: ['handshake', 'soak'] })
  assert.deepEqual(Object.keys(both), ['suites', 'certs', 'targets', 'profiles', 'rounds', 'warmupSeconds', 'request', 'workers', 'processes', 'concurrency', 'durationSeconds', 'count', 'soakSeconds', 'soakRssMb'])
  assert.equal(both.targets, given.targets)
  assert.equal(benchSettings({ ...given, suites: ['agent'] }).targets, undefined)
  assert.equal(benchSettings({ ...given, suites: ['agent'] }).warmupSeconds, undefined, 'the warm-up is the handshake suite\'s')
})
