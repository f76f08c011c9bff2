import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { CircuitBreaker, type Admission, type BreakerOptions } from '../../src/store/circuit-breaker.js'

/** A breaker on a clock the test moves, recording each up/down change and its back-off. */
function breakerAt (opts: Partial<BreakerOptions> = {}): { breaker: CircuitBreaker; changes: Array<[boolean, number]>; at: (ms: number) => void } {
  let now = 0
  const changes: Array<[boolean, number]> = []
  const breaker = new CircuitBreaker({ failureThreshold: 3, initialBackoffMs: 100, maxBackoffMs: 400, stableMs: 1000, now: () => now, onChange: (up, { backoffMs }) => changes.push([up, backoffMs]), ...opts })
  return { breaker, changes, at: (ms) => { now = ms } }
}

function admitted (breaker: CircuitBreaker): Admission {
  const call = breaker.allow()
  assert.ok(call !== undefined, `refused in state ${breaker.state}`)
  return call
}

describe('circuit breaker', () => {
  test('an idle open breaker reports half_open once its back-off has passed (the next call probes), and still lets only one probe out', () => {
    const { breaker, at } = breakerAt()
    for (let i = 0; i < 3; i++) breaker.failure(admitted(breaker))
    assert.equal(breaker.state, 'open')
    at(99)
    assert.equal(breaker.state, 'open', 'within the back-off')
    at(100)
    assert.equal(breaker.state, 'half_open', 'no call came, yet the next one will be let through')
    at(5000)
    assert.equal(breaker.state, 'half_open', 'stays so while idle')
    const probe = admitted(breaker)
    assert.equal(breaker.allow(), undefined, 'one probe at a time')
    breaker.failure(probe)
    assert.equal(breaker.state, 'open', 'a failed probe opens it again')
    at(5199)
    assert.equal(breaker.state, 'open', 'for the doubled back-off')
    at(5200)
    assert.equal(breaker.state, 'half_open')
    breaker.success(admitted(breaker))
    assert.equal(breaker.state, 'closed')
  })

  test('opens after the threshold, probes after the back-off, doubles it on a failed probe, closes on success; one change per down and up', () => {
    const { breaker, changes, at } = breakerAt({ maxBackoffMs: 300, stableMs: 0 })
    for (const ok of [false, false, true, false, false]) { const c = admitted(breaker); if (ok) breaker.success(c); else breaker.failure(c) }
    assert.equal(breaker.state, 'closed', 'failures must be in a row')
    breaker.failure(admitted(breaker))
    assert.equal(breaker.state, 'open')
    assert.equal(breaker.allow(), undefined)
    at(100)
    const probe = admitted(breaker)
    assert.equal(breaker.state, 'half_open')
    assert.equal(breaker.allow(), undefined, 'one probe at a time')
    breaker.failure(probe)
    at(299)
    assert.equal(breaker.allow(), undefined, 'back-off doubled to 200 ms')
    at(300)
    breaker.failure(admitted(breaker))
    at(600)
    breaker.success(admitted(breaker))
    assert.equal(breaker.state, 'closed', 'back-off capped at 300 ms')
    assert.ok(breaker.allow() !== undefined)
    assert.deepEqual(changes, [[false, 100], [true, 0]])
  })

  test('while open, an answer from a call let through before it opened neither closes it nor counts; only the probe does', () => {
    const { breaker, changes, at } = breakerAt()
    const early = [admitted(breaker), admitted(breaker), admitted(breaker), admitted(breaker)]
    for (const c of early.slice(0, 3)) breaker.failure(c)
    assert.equal(breaker.state, 'open')
    breaker.success(early[3] as Admission) // out before the trip, answering late
    assert.equal(breaker.state, 'open', 'closed by a late answer')
    at(100)
    const probe = admitted(breaker)
    breaker.success(early[3] as Admission)
    breaker.failure(early[0] as Admission)
    assert.equal(breaker.state, 'half_open', 'old answers do not decide the probe')
    breaker.success(probe)
    assert.equal(breaker.state, 'closed')
    // A failure from before the close does not count towards the next opening.
    const after = [admitted(breaker), admitted(breaker)]
    breaker.failure(probe)
    for (const c of after) breaker.failure(c)
    assert.equal(breaker.state, 'closed', 'a stale failure counted')
    assert.deepEqual(changes, [[false, 100]], 'not back before stableMs')
  })

  test('a store that answers the odd probe and fails again keeps doubling its back-off and logs one line down; up and back to the first back-off only once it held for stableMs', () => {
    const { breaker, changes, at } = breakerAt()
    const fail = (n: number): void => { for (let i = 0; i < n; i++) breaker.failure(admitted(breaker)) }
    fail(3)
    const backoffs: number[] = []
    let t = 0
    // Each cycle: the probe succeeds, then three failures in a row open it again at once.
    for (let cycle = 0; cycle < 5; cycle++) {
      let waited = 0
      let probe: Admission | undefined
      while ((probe = breaker.allow()) === undefined) { t += 10; waited += 10; at(t) }
      backoffs.push(waited)
      breaker.success(probe)
      assert.equal(breaker.state, 'closed')
      fail(3)
    }
    assert.deepEqual(backoffs, [100, 200, 400, 400, 400], 'back-off reset by each lull')
    assert.deepEqual(changes, [[false, 100]], 'one line for the whole flapping')
    // Now it holds: the probe succeeds and calls keep succeeding for stableMs.
    let probe: Admission | undefined
    while ((probe = breaker.allow()) === undefined) { t += 10; at(t) }
    breaker.success(probe)
    at(t + 999)
    breaker.success(admitted(breaker))
    assert.deepEqual(changes, [[false, 100]])
    at(t + 1000)
    breaker.success(admitted(breaker))
    assert.deepEqual(changes, [[false, 100], [true, 0]])
    fail(3)
    assert.deepEqual(changes.at(-1), [false, 100], 'back to the first back-off')
  })
})
