import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { openBrowser, type OpenBrowser } from '../helpers/browser.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { pollUntil } from '../helpers/haproxy.js'
import { startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

/**
 * The dashboard of a node that stops answering without closing its connections (its primary
 * frozen with SIGSTOP: a paused VM, a hung process, a cut SSH tunnel look the same to the
 * browser). Before, the page's request stayed open for minutes and the badge went on showing
 * "ready · up".
 */

let node: RunningNode
let browser: OpenBrowser | undefined

before(async () => {
  const dir = tempDir()
  const [tls, admin] = await freePorts(2) as [number, number]
  node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${tls}`, '--cert', makeCertificate(dir, 'n', ['localhost']), '--state-dir', `${dir}/state`, '--node-id', 'frozen'], { adminPort: admin })
})

after(async () => {
  // Never leave a stopped process behind, whatever failed.
  if (node?.process.pid !== undefined && node.process.exitCode === null) node.process.kill('SIGCONT')
  await browser?.close()
  await node?.stop()
})

test('in Chromium: a frozen node shows "no answer" within seconds, and its state again once it answers', async () => {
  browser = await openBrowser()
  const { page } = browser
  const badge = async (): Promise<string> => (await page.locator('[data-field="state-badge"]').textContent()) ?? ''
  await page.goto(`${node.adminUrl}/`)
  await pollUntil('the node\'s state on the page', async () => await badge() === 'ready · up' ? true : undefined)

  const pid = node.process.pid as number
  process.kill(pid, 'SIGSTOP')
  const frozenAt = Date.now()
  try {
    // The request deadline (8 s) after the poll in flight (every 2 s), with room for a slow machine.
    await pollUntil('"no answer" on the badge', async () => await badge() === 'no answer' ? true : undefined, 20_000)
    assert.ok(Date.now() - frozenAt < 20_000)
    assert.match((await page.locator('[data-field="problem"]').textContent()) ?? '', /^Cannot read the node's dashboard data: no answer within 8 s; the figures below are the last ones read; retrying\.$/)
  } finally {
    process.kill(pid, 'SIGCONT')
  }
  // Retries back off to at most 15 s between polls.
  await pollUntil('the state back on the badge', async () => await badge() === 'ready · up' ? true : undefined, 25_000)
  assert.equal(await page.locator('[data-field="problem"]').isVisible(), false)
  assert.deepEqual(browser.problems, [])
})
