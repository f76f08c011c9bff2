import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { storeRows } from '../../src/cli/status-command.js'
import { StoreConnection } from '../../src/store/store-connection.js'

function tracker (holdMs: number): { connection: StoreConnection; lines: string[]; at: (ms: number) => void } {
  let now = 0
  const lines: string[] = []
  const connection = new StoreConnection({ holdMs, now: () => now, announce: { up: () => lines.push('connected'), down: () => lines.push('lost') } })
  return { connection, lines, at: (ms) => { now = ms } }
}

describe('store connection', () => {
  test('unreachable at start: connected false, then one "connected" line at the first ready; lost and back: one line each', () => {
    const { connection, lines, at } = tracker(10_000)
    connection.started(false)
    assert.equal(connection.connected, false)
    at(2000)
    connection.ready()
    assert.equal(connection.connected, true)
    assert.deepEqual(lines, ['connected'], 'said at once, not held back by the start line')
    at(60_000)
    connection.lost()
    connection.lost() // close, then end: one loss
    assert.equal(connection.connected, false)
    at(61_000)
    connection.ready()
    assert.deepEqual(lines, ['connected', 'lost', 'connected'])
    connection.close()
  })

  test('a connection that flaps logs one line each way per hold time, and the log ends on the true state', async () => {
    const lines: string[] = []
    const connection = new StoreConnection({ holdMs: 50, announce: { up: () => lines.push('connected'), down: () => lines.push('lost') } })
    const hold = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 120)) }
    connection.started(true)
    connection.lost()
    for (let i = 0; i < 5; i++) { connection.ready(); connection.lost() }
    assert.deepEqual(lines, ['lost', 'connected'], 'the reconnections after the first are held back')
    await hold()
    assert.deepEqual(lines, ['lost', 'connected', 'lost'], 'down at the end of the hold time: said then')
    connection.ready()
    assert.deepEqual(lines, ['lost', 'connected', 'lost', 'connected'], 'back, past the hold time: said at once')
    connection.close()
  })

  test('nothing is said before the start line, nor after close (the node stopping)', () => {
    const { connection, lines } = tracker(0)
    connection.ready()
    connection.lost()
    assert.deepEqual(lines, [])
    connection.started(false)
    connection.close()
    connection.ready()
    assert.deepEqual(lines, [])
  })

  test('tlsfleet status: a store not connected gets a warning line; a node older than the field none', () => {
    const store = { target: 'redis://10.0.0.30:6379/0', connected: false, lookups: 'open' as const, writes: 'closed' as const, deletes: 'closed' as const }
    const rows = storeRows(store)
    assert.deepEqual(rows[0], ['session store', 'redis://10.0.0.30:6379/0: NOT connected, lookups open, writes closed, deletes closed'])
    assert.match(rows[1]?.[1] ?? '', /^warning: the session store is not connected/)
    assert.equal(storeRows({ ...store, connected: true }).length, 1)
    const { connected: _, deletes: __, ...older } = store
    assert.deepEqual(storeRows(older as typeof store), [['session store', 'redis://10.0.0.30:6379/0, lookups open, writes closed']])
    assert.deepEqual(storeRows(undefined), [['session store', 'off']])
  })
})
