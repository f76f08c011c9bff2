import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import type { Page } from 'playwright-core'
import type { SceneReport } from '../../src/lab/scene.js'
import { runCli } from '../helpers/agent.js'
import { docsScreenshot, openBrowser, pixelsOfColor } from '../helpers/browser.js'
import { tempDir } from '../helpers/certs.js'
import { pollUntil } from '../helpers/haproxy.js'
import { freePort } from '../helpers/ports.js'

/**
 * `tlsfleet lab --failover --report` and `tlsfleet bench --report`: real runs, then the HTML
 * file opened from disk in Chromium with every request off the machine refused.
 */

async function run (args: string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  const { code, stdout, stderr } = await runCli(args, timeoutMs)
  return { code, output: stdout + stderr }
}

/** Hover over a report chart at x (its data's unit) and read uPlot's legend: series → value. */
async function legendAt (page: Page, chart: string, x: number, xMin: number, xMax: number): Promise<Record<string, number>> {
  const holder = page.locator(`[data-chart="${chart}"]`)
  const box = await holder.locator('.u-over').boundingBox()
  assert.ok(box !== null, `${chart}: no plot area`)
  // uPlot's cursor snaps to the nearest point; stay inside the plot area at the edges.
  const offset = Math.min(box.width - 2, Math.max(2, ((x - xMin) / (xMax - xMin)) * box.width))
  await page.mouse.move(box.x + offset, box.y + box.height / 2)
  const labels = await holder.locator('.u-legend .u-series th').allTextContents()
  // The legend follows the cursor on the next animation frame.
  const values = await pollUntil(`${chart}: legend values`, async () => {
    const cells = await holder.locator('.u-legend .u-series td').allTextContents()
    return cells.slice(1).every((c) => /^\d+(\.\d+)?$/.test(c.trim())) ? cells : undefined
  }, 3000)
  return Object.fromEntries(labels.slice(1).map((label, i) => [label.trim(), Number((values[i + 1] ?? '').trim())]))
}

test('lab --failover --report: the timeline shows node1 killed, its clients resumed on node2 and node3, and node2 drained', async () => {
  const dir = tempDir()
  const file = path.join(dir, 'failover.html')
  const port = await freePort('127.0.0.10')
  const { code, output } = await run(['lab', '--listen', `127.0.0.10:${port}`, '--failover', '--acts', 'kill,drain', '--act-seconds', '3',
    '--clients', '30', '--rate', '60', '--report', file], 90_000)
  assert.equal(code, 0, output)
  assert.match(output, /HTML report written to/)
  const html = fs.readFileSync(file, 'utf8')
  assert.doesNotMatch(html, /<(script|link)[^>]+(src|href)=/i, 'everything is inline')

  const browser = await openBrowser()
  try {
    const { page } = browser
    await page.goto(`file://${file}`)
    assert.equal(await page.locator('h1').textContent(), 'tlsfleet lab: failover scene')
    const report = JSON.parse(await page.locator('#tlsfleet-raw').textContent() ?? '') as SceneReport
    const kill = report.events.find((e) => e.kind === 'kill')
    assert.ok(kill !== undefined && kill.node === 'node1', JSON.stringify(report.events))
    const seconds = report.timeline.length
    assert.ok(seconds >= 5, `timeline of ${seconds} s`)
    for (const node of ['node1', 'node2', 'node3']) {
      assert.ok(Number(await page.locator(`[data-chart="${node}: handshakes per second"]`).getAttribute('data-points')) >= seconds * 3, node)
    }
    // Each act is marked, strongly on the chart of the node it concerns: kill on node1, drain and stop on node2.
    assert.deepEqual(report.events.map((e) => `${e.kind} ${e.node}`), ['kill node1', 'drain node2', 'stop node2'])
    assert.ok(await pixelsOfColor(page, '[data-chart="node1: handshakes per second"]', '#c92a2a') > 20, 'no kill marker on node1')
    assert.ok(await pixelsOfColor(page, '[data-chart="node2: handshakes per second"]', '#c92a2a') > 20, 'no drain marker on node2')
    assert.equal(await pixelsOfColor(page, '[data-chart="node3: handshakes per second"]', '#c92a2a'), 0)
    assert.match((await page.locator('dl.facts').textContent()) ?? '', /node1 killed \(SIGKILL\)\d+ of its clients came back/)

    // What the charts say when hovered after the kill: node1 serves nothing, the others resume.
    const after = Math.min(seconds, Math.ceil(kill.at / 1000) + 2)
    const node1 = await legendAt(page, 'node1: handshakes per second', after + 1, 1, seconds)
    assert.equal(node1.full, 0, JSON.stringify(node1))
    assert.equal(node1.resumed, 0, JSON.stringify(node1))
    const node2 = await legendAt(page, 'node2: handshakes per second', after, 1, seconds)
    const node3 = await legendAt(page, 'node3: handshakes per second', after, 1, seconds)
    assert.ok((node2.resumed ?? 0) + (node3.resumed ?? 0) >= 3, `after the kill: node2 ${JSON.stringify(node2)}, node3 ${JSON.stringify(node3)}`)
    assert.ok((node2.full ?? 0) + (node3.full ?? 0) <= 3, `full handshakes after the kill: ${JSON.stringify([node2, node3])}`)
    assert.ok(await pixelsOfColor(page, '[data-chart="The whole farm: handshakes per second"]', '#2b8a3e') > 50)

    await page.mouse.move(0, 0)
    await page.screenshot({ path: docsScreenshot('lab-report.png'), fullPage: true })
    assert.deepEqual(browser.problems, [])
  } finally {
    await browser.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('bench --report: server CPU per handshake as bars per profile, with the ratio to tlsfleet, and the raw JSON', async () => {
  const dir = tempDir()
  const file = path.join(dir, 'bench.html')
  const { code, output } = await run(['bench', '--targets', 'tlsfleet,haproxy', '--profiles', 'full-1.2,resume-1.2-id', '--certs', 'ecdsa',
    '--duration', '1', '--count', '100', '--processes', '1', '--concurrency', '4', '--quiet', '--report', file], 90_000)
  assert.equal(code, 0, output)

  const browser = await openBrowser()
  try {
    const { page } = browser
    await page.goto(`file://${file}`)
    assert.equal(await page.locator('h1').textContent(), 'tlsfleet bench')
    const cpu = page.locator('[data-chart="Server CPU per handshake, ecdsa certificate"]')
    assert.equal(await cpu.getAttribute('data-points'), '4')
    assert.equal(await cpu.locator('svg rect').count(), 4)
    const labels = await cpu.locator('svg text.bars-group').allTextContents()
    assert.deepEqual(labels, ['full-1.2', 'resume-1.2-id'])
    const values = await cpu.locator('svg text.bars-value').allTextContents()
    assert.ok(values.every((v) => /^\d+ µs/.test(v)), values.join(' | '))
    assert.equal(values.filter((v) => /\d\.\d\d× tlsfleet$/.test(v)).length, 2, values.join(' | '))
    const ratios = await page.locator('[data-chart="Server CPU per handshake relative to tlsfleet"] svg text.bars-value').allTextContents()
    assert.deepEqual(ratios.filter((_, i) => i % 2 === 0), ['1.00 ×', '1.00 ×'])
    const raw = JSON.parse(await page.locator('#tlsfleet-raw').textContent() ?? '') as { handshake: unknown[] }
    assert.equal(raw.handshake.length, 4)
    await page.click('summary')
    assert.match((await page.locator('details pre').textContent()) ?? '', /"serverCpuUsPerHandshake"/)

    await page.screenshot({ path: docsScreenshot('bench-report.png'), fullPage: true })
    assert.deepEqual(browser.problems, [])
  } finally {
    await browser.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('--report is refused before anything runs when it cannot be written, or without --failover', async () => {
  const missing = path.join(tempDir(), 'no-such-folder', 'r.html')
  const lab = await run(['lab', '--failover', '--report', missing], 20_000)
  assert.equal(lab.code, 2, lab.output)
  assert.match(lab.output, /--report ".*r\.html": the folder .*no-such-folder does not exist/)
  assert.doesNotMatch(lab.output, /starting haproxy/)
  const noScene = await run(['lab', '--report', path.join(tempDir(), 'r.html')], 20_000)
  assert.equal(noScene.code, 2, noScene.output)
  assert.match(noScene.output, /--report needs --failover/)
  const bench = await run(['bench', '--report', missing, '--quiet'], 20_000)
  assert.equal(bench.code, 2, bench.output)
  assert.match(bench.output, /does not exist \(TLSFLEET_ERR_USAGE\)/)
})
