import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { tempDir } from './certs.js'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { REPO_ROOT } from './node-process.js'

/** Debian's Chromium (`apt-get install chromium`); Playwright never downloads a browser here. */
export const CHROMIUM = '/usr/bin/chromium'

/** Without the background-networking flags Chromium calls home, which a closed network refuses. */
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

export interface OpenBrowser {
  page: Page
  context: BrowserContext
  /** Page errors, console errors and refused requests so far: each is a test failure. */
  problems: string[]
  close: () => Promise<void>
}

function allowed (url: string): boolean {
  if (url.startsWith('file:') || url.startsWith('data:') || url.startsWith('blob:') || url === 'about:blank') return true
  try {
    const host = new URL(url).hostname
    return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host)
  } catch { return false }
}

/**
 * Headless Chromium with a fresh profile. Every request that would leave loopback is refused
 * and recorded (the pages must work offline); every JavaScript error is recorded.
 */
export async function openBrowser (viewport = { width: 1280, height: 900 }): Promise<OpenBrowser> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    timeout: 30_000
  })
  const problems: string[] = []
  await context.route('**/*', async (route) => {
    const url = route.request().url()
    if (allowed(url)) return await route.continue()
    problems.push(`request outside loopback refused: ${url}`)
    return await route.abort()
  })
  const page = context.pages()[0] ?? await context.newPage()
  page.setDefaultTimeout(15_000)
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`) })
  return {
    page,
    context,
    problems,
    close: async () => {
      await context.close()
      fs.rmSync(profile, { recursive: true, force: true })
    }
  }
}

/** Where the tests write their screenshots (docs/ when refreshing the ones the README links to). */
export function docsScreenshot (name: string): string {
  // The committed screenshots are refreshed on purpose (TLSFLEET_SCREENSHOTS=docs npm test),
  // so an ordinary test run leaves the tree clean; it still takes them, in a temp dir.
  if (process.env.TLSFLEET_SCREENSHOTS === 'docs') return path.join(REPO_ROOT, 'docs', name)
  return path.join(screenshotDir ??= tempDir('tlsfleet-screenshots-'), name)
}
let screenshotDir: string | undefined

/**
 * Pixels of the canvas(es) under `selector` close to `hex`: a drawn series, not just axes.
 * (Browser code as text: the tests compile without the DOM library.)
 */
export async function pixelsOfColor (page: Page, selector: string, hex: string): Promise<number> {
  return await page.evaluate(`(() => {
    const want = [1, 3, 5].map((i) => parseInt(${JSON.stringify(hex)}.slice(i, i + 2), 16))
    let count = 0
    for (const canvas of document.querySelectorAll(${JSON.stringify(`${selector} canvas`)})) {
      const ctx = canvas.getContext('2d')
      if (ctx === null || canvas.width === 0 || canvas.height === 0) continue
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data
      for (let i = 0; i < data.length; i += 4) {
        if (Math.abs(data[i] - want[0]) < 12 && Math.abs(data[i + 1] - want[1]) < 12 && Math.abs(data[i + 2] - want[2]) < 12 && data[i + 3] > 200) count++
      }
    }
    return count
  })()`) as number
}
