import assert from 'node:assert/strict'
import { test } from 'node:test'
import { splitTicks, treeThreads, type ThreadTicks } from '../../src/lab/proc-cpu.js'

test('splitTicks sums what each thread used into root/children × main/other; a thread born meanwhile counts whole, one gone is left out', () => {
  const t = (key: string, root: boolean, main: boolean, ticks: number): ThreadTicks => ({ key, root, main, ticks })
  const before = [t('10/10', true, true, 100), t('10/11', true, false, 5), t('20/20', false, true, 300), t('20/21', false, false, 40), t('20/22', false, false, 7)]
  const after = [t('10/10', true, true, 110), t('10/11', true, false, 5), t('20/20', false, true, 500), t('20/21', false, false, 60), t('20/23', false, false, 30)]
  assert.deepEqual(splitTicks(before, after, 100), { rootMain: 0.1, rootOther: 0, childrenMain: 2, childrenOther: 0.5 })
  // A tick count that went backwards (a reused key) never subtracts.
  assert.deepEqual(splitTicks([t('1/1', true, true, 50)], [t('1/1', true, true, 20)], 100), { rootMain: 0, rootOther: 0, childrenMain: 0, childrenOther: 0 })
})

test('treeThreads reads this process: its main thread is the root\'s main, V8 and libuv threads are its others', () => {
  const threads = treeThreads([process.pid])
  const main = threads.filter((x) => x.root && x.main)
  assert.equal(main.length, 1)
  assert.equal(main[0]?.key, `${process.pid}/${process.pid}`)
  assert.ok(threads.some((x) => x.root && !x.main), 'Node always runs helper threads')
  assert.ok(threads.every((x) => x.ticks >= 0 && Number.isFinite(x.ticks)))
})
