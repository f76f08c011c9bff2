import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { writeToken } from '../helpers/agent.js'
import { openBrowser, type OpenBrowser } from '../helpers/browser.js'
import { makeCertificate, tempDir } from '../helpers/certs.js'
import { pollUntil } from '../helpers/haproxy.js'
import { startNode, type RunningNode } from '../helpers/node-process.js'
import { freePorts } from '../helpers/ports.js'

/**
 * The dashboard's token form, of a node whose reads need the token, given what an operator
 * pastes: the token with an invisible character copied along. Before, the browser refused to
 * send it (not a valid header value), the page showed the browser's fetch error as the node's
 * and turned the badge to "no answer", though the node was up.
 */

let node: RunningNode
let token: string
let browser: OpenBrowser | undefined

before(async () => {
  const dir = tempDir()
  let file: string
  ;({ file, token } = writeToken(dir))
  const [tls, admin] = await freePorts(2) as [number, number]
  node = await startNode(['--workers', '1', '--listen', `127.0.0.1:${tls}`, '--cert', makeCertificate(dir, 'n', ['localhost']), '--state-dir', `${dir}/state`, '--admin-token-file', file], { adminPort: admin })
})

after(async () => {
  await browser?.close()
  await node?.stop()
})

test('in Chromium: a token with a zero-width space is refused by the form, naming why; the node\'s state stays shown', async () => {
  browser = await openBrowser()
  const { page } = browser
  const text = async (name: string): Promise<string> => (await page.locator(`[data-field="${name}"]`).textContent()) ?? ''
  await page.goto(`${node.adminUrl}/`)
  await page.locator('[data-section="auth"]').waitFor({ state: 'visible' })
  await pollUntil('the state from /health', async () => await text('state-badge') === 'ready · up' ? true : undefined)

  await page.fill('input[name="token"]', `${token}\u200b`)
  await page.click('button[type="submit"]')
  await pollUntil('the form\'s refusal', async () => (await text('auth-message')).startsWith('That is not a token: a token is printable ASCII without spaces') ? true : undefined)
  // Polls go on with /health: the badge is the node's state, not a failure of the page's own.
  await page.waitForTimeout(2500)
  assert.equal(await text('state-badge'), 'ready · up')
  assert.equal(await page.locator('[data-field="problem"]').isVisible(), false)
  assert.equal(await page.evaluate('sessionStorage.length'), 0)

  await page.fill('input[name="token"]', token)
  await page.click('button[type="submit"]')
  await page.locator('[data-section="details"]').waitFor({ state: 'visible' })
  assert.deepEqual(browser.problems, [])
})
