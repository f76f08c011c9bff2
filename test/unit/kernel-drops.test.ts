import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import dgram from 'node:dgram'
import { test } from 'node:test'
import { kernelDrops, parseUdpTable } from '../../src/sync/kernel-drops.js'

test('parses /proc/net/udp rows: local port (hex), inode, drops', () => {
  const text = [
    '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
    ' 1234: 0100007F:20FE 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 271805 2 0000000000000000 17',
    '  567: 00000000:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 99 2 0000000000000000 0'
  ].join('\n')
  assert.deepEqual(parseUdpTable(text), [{ localPort: 0x20fe, inode: '271805', drops: 17 }, { localPort: 8080, inode: '99', drops: 0 }])
})

test('counts what the kernel dropped on this process\'s own socket when its buffer overflows', async () => {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()))
  socket.setRecvBufferSize(4096)
  const port = socket.address().port
  assert.equal(kernelDrops(port), 0)
  // Another process floods the port while this one's event loop is busy and reads nothing.
  const flood = spawn(process.execPath, ['-e', `
    const s = require('node:dgram').createSocket('udp4'); const p = Buffer.alloc(1000); let n = 0
    const send = () => { if (n++ >= 2000) return s.close(); s.send(p, ${port}, '127.0.0.1', send) }; send()`])
  const until = Date.now() + 1500
  while (Date.now() < until) { /* busy: the kernel must queue, then drop */ }
  await new Promise((resolve) => flood.once('exit', resolve))
  const drops = kernelDrops(port)
  socket.close()
  assert.ok(drops !== undefined && drops > 0, `drops: ${String(drops)}`)
})
