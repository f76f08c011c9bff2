import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startAdminServer, type AdminSource } from '../../src/admin/admin-server.js'
import { healthSchema, putStateBodySchema } from '../../src/admin/schemas.js'
import { formatAgentReply, type AdminState, type Health } from '../../src/agent/agent-reply.js'
import { AGENT_ERROR_LINE } from '../../src/agent/agent-server.js'
import { docCodeSpans, sectionLines, tableRows, where } from '../helpers/docs.js'

/**
 * docs/operations.md's admin API table against the routes the admin server registers, and the
 * agent lines and states it documents against src/agent/agent-reply.ts.
 */

/** The admin server as the node starts it, on a free loopback port; no route is called. */
async function registeredRoutes (): Promise<Set<string>> {
  const never = (): never => { throw new Error('not called') }
  const source: AdminSource = {
    health: never, state: never, setState: never, moveClients: never, cache: never, peers: never, certificates: never, metrics: never, dashboard: never
  }
  const app = await startAdminServer({ listen: { host: '127.0.0.1', port: 0 } }, source)
  try {
    const routes = new Set<string>()
    // printRoutes' tree: each line a path segment under its parent's, by indentation
    // ("└── / (GET, HEAD)", "    ├── v1/state (GET, HEAD, PUT)").
    const stack: string[] = []
    for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
      const m = /^([│ ]*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?$/.exec(line)
      if (m === null) continue
      const depth = (m[1] as string).length / 4
      stack.length = depth
      stack.push(m[2] as string)
      for (const method of m[3]?.split(', ') ?? []) if (method !== 'HEAD') routes.add(`${method} ${stack.join('')}`)
    }
    return routes
  } finally {
    await app.close()
  }
}

function documentedRoutes (): Map<string, string> {
  const rows = tableRows(sectionLines('docs/operations.md', '## Admin API'), 'route')
  const routes = new Map(rows.map(({ cells, at }) => [(cells[0] ?? '').replace(/`/g, ''), where(at)]))
  // Files served under a prefix are named in an answer: "its scripts and styles under `GET /dashboard/*`".
  for (const { cells, at } of rows) for (const m of (cells[1] ?? '').matchAll(/`((?:GET|PUT|POST) \/\S*\/\*)`/g)) routes.set(m[1] as string, where(at))
  return routes
}

test('docs/operations.md Admin API: every route the admin server registers has a row, and every row is a route', async () => {
  const registered = await registeredRoutes()
  assert.ok(registered.has('GET /health') && registered.has('PUT /v1/state'), `routes not read: ${[...registered].join(', ')}`)
  const documented = documentedRoutes()
  // The dashboard's files, one row: "its scripts and styles under GET /dashboard/*".
  const covered = (route: string): boolean => documented.has(route) ||
    [...documented.keys()].some((d) => d.endsWith('/*') && route.startsWith(d.slice(0, -1)))
  assert.deepEqual([...registered].filter((r) => !covered(r)), [], 'registered routes missing from the docs')
  const dashboardFiles = [...documented.keys()].filter((d) => d.endsWith('/*'))
  for (const prefix of dashboardFiles) assert.ok([...registered].some((r) => r.startsWith(prefix.slice(0, -1))), `${prefix}: no route under it`)
  const unknown = [...documented].filter(([route]) => !route.endsWith('/*') && !registered.has(route)).map(([route, at]) => `${route} (${at})`)
  assert.deepEqual(unknown, [], 'documented routes the admin server does not have')
})

test('the 404 answer lists the same routes', async () => {
  const registered = await registeredRoutes()
  const never = (): never => { throw new Error('not called') }
  const app = await startAdminServer({ listen: { host: '127.0.0.1', port: 0 } }, {
    health: never, state: never, setState: never, moveClients: never, cache: never, peers: never, certificates: never, metrics: never, dashboard: never
  })
  try {
    const answer = await app.inject({ method: 'GET', url: '/nowhere' })
    const message = (answer.json() as { message: string }).message
    const listed = new Set<string>()
    for (const m of message.split('routes: ')[1]?.matchAll(/([A-Z|]+) (\/\S*)/g) ?? []) {
      for (const method of (m[1] as string).split('|')) listed.add(`${method} ${m[2] as string}`.replace(/,$/, ''))
    }
    const pages = [...registered].filter((r) => !r.startsWith('GET /dashboard/'))
    assert.deepEqual([...listed].sort(), pages.sort())
  } finally {
    await app.close()
  }
})

const ADMIN_STATES = putStateBodySchema.properties.state.enum as readonly AdminState[]
const HEALTHS = healthSchema.properties.health.enum as readonly Health[]

test('docs/operations.md admin states: the table names the states the API and the agent take', () => {
  const rows = tableRows(sectionLines('docs/operations.md', '## Node states and the HAProxy agent'), 'admin state')
  assert.deepEqual(rows.map(({ cells }) => (cells[0] ?? '').replace(/`/g, '')).sort(), [...ADMIN_STATES].sort())
  for (const state of ADMIN_STATES) assert.doesNotThrow(() => formatAgentReply({ admin: state, health: 'up', weightPercent: 100 }))
  assert.deepEqual([...HEALTHS].sort(), ['down', 'up'])
})

test('every agent line docs/operations.md shows is one the agent writes', () => {
  const problems: string[] = []
  let lines = 0
  for (const { span, at } of docCodeSpans('docs/operations.md')) {
    // A reply: admin state, health, weight, maxconn, reason (`ready up 80% maxconn:500`), or a part of one.
    const m = /^(ready|drain|maint) (up|down)(?: (\d+|N|\.\.\.)%?)?(?: maxconn:(\d+|M))?(?: #(.+))?$/.exec(span)
    if (m === null) {
      if (/^(ready|drain|maint) (up|down)\b/.test(span)) problems.push(`${where(at)}: ${JSON.stringify(span)} is no agent line (admin state, health, weight%, maxconn:N, #reason)`)
      if (/^down #/.test(span) && `${span}\n` !== AGENT_ERROR_LINE) problems.push(`${where(at)}: ${JSON.stringify(span)} is not the agent's error line ${JSON.stringify(AGENT_ERROR_LINE)}`)
      continue
    }
    lines++
    const [, admin, health, weight, maxconn, reason] = m
    // Only whole, concrete lines can be written again word for word; `... #stopping` or `N%` are shapes.
    if (weight === undefined || !/^\d+$/.test(weight) || (maxconn !== undefined && !/^\d+$/.test(maxconn))) continue
    const written = formatAgentReply({
      admin: admin as AdminState,
      health: health as Health,
      weightPercent: Number(weight),
      ...(maxconn !== undefined ? { maxconn: Number(maxconn) } : {}),
      ...(reason !== undefined ? { reason } : {})
    })
    if (written !== `${span}\n`) problems.push(`${where(at)}: ${JSON.stringify(span)}, the agent writes ${JSON.stringify(written)}`)
  }
  assert.ok(lines >= 5, `the agent lines were not found (${lines})`)
  assert.deepEqual(problems, [])
})
