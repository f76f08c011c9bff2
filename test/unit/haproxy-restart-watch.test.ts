import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HaproxyRestartWatch } from '../../src/haproxy/restart-watch.js'
import type { HaproxyRuntimeApi } from '../../src/haproxy/runtime-api.js'
import { parseShowInfo } from '../../src/haproxy/show-info.js'

/** A Runtime API whose `show info` answers as the process `answer` names, or fails. */
function fakeApi (): { api: HaproxyRuntimeApi; answer: { pid: number; start: number } | Error } {
  const state: { answer: { pid: number; start: number } | Error } = { answer: { pid: 100, start: 1796445840 } }
  const api = {
    showInfo: async () => {
      if (state.answer instanceof Error) throw state.answer
      return parseShowInfo(`Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nPid: ${state.answer.pid}\nStart_time_sec: ${state.answer.start}\n`)
    }
  } as unknown as HaproxyRuntimeApi
  return { api, get answer () { return state.answer }, set answer (a) { state.answer = a } }
}

test('the restart watch: the first answer is the baseline; a new pid or start time is a restart, a failed read is none', async () => {
  const haproxy = fakeApi()
  const restarts: Array<number | undefined> = []
  const reads: string[] = []
  const watch = new HaproxyRestartWatch(haproxy.api, { onRestart: async (info) => { restarts.push(info.pid) }, onRead: (err) => reads.push(err === undefined ? 'ok' : 'error') })
  await watch.read()
  await watch.read()
  assert.deepEqual(restarts, [], 'the baseline and the same process again')
  haproxy.answer = new Error('ECONNREFUSED')
  await watch.read()
  haproxy.answer = { pid: 100, start: 1796445840 }
  await watch.read()
  assert.deepEqual(restarts, [], 'unreachable for a while, then the same process: nothing to tell')
  haproxy.answer = { pid: 200, start: 1796445900 }
  await watch.read()
  await watch.read()
  haproxy.answer = { pid: 200, start: 1796446000 } // the pid reused by a later process
  await watch.read()
  assert.deepEqual(restarts, [200, 200])
  assert.deepEqual(reads, ['ok', 'ok', 'error', 'ok', 'ok', 'ok', 'ok'])
})

test('the restart watch: after a failed baseline (the state applied at start may not have reached HAProxy), the first answer is told the state', async () => {
  const haproxy = fakeApi()
  haproxy.answer = new Error('ENOENT')
  const restarts: Array<number | undefined> = []
  const watch = new HaproxyRestartWatch(haproxy.api, { onRestart: async (info) => { restarts.push(info.pid) }, onRead: () => {} })
  await watch.read()
  haproxy.answer = { pid: 300, start: 1796445840 }
  await watch.read()
  await watch.read()
  assert.deepEqual(restarts, [300])
  watch.stop()
  haproxy.answer = { pid: 301, start: 1796445841 }
  await watch.read()
  assert.deepEqual(restarts, [300], 'a stopped watch (the node stopping) tells nothing')
})
