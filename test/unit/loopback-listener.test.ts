import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import net from 'node:net'
import path from 'node:path'
import { test } from 'node:test'
import { listenerUids } from '../../src/cli/loopback-listener.js'

/** Socket tables as Linux writes them (addresses in host order, ports in hex, 0A = LISTEN, uid in the 8th field). */
function tables (tcp: string[], tcp6: string[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsfleet-proc-net-'))
  const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n'
  const row = (i: number, local: string, st: string, uid: number): string => `   ${i}: ${local} 00000000:0000 ${st} 00000000:00000000 00:00000000 00000000  ${uid}        0 12345 1 0000000000000000 100 0 0 10 0\n`
  const write = (name: string, rows: string[]): void => {
    fs.writeFileSync(path.join(dir, name), header + rows.map((r, i) => { const [local = '', st = '', uid = '0'] = r.split(' '); return row(i, local, st, Number(uid)) }).join(''))
  }
  write('tcp', tcp)
  write('tcp6', tcp6)
  return dir
}

test('the listener a loopback connection reaches: the address itself, the wildcards, v4-mapped; not other ports, states or addresses', () => {
  const dir = tables(
    ['0100007F:20FD 0A 1001', '00000000:1F90 0A 0', '0100007F:20FE 01 1002', '0200007F:20FF 0A 1003'],
    ['00000000000000000000000001000000:2100 0A 1004', '00000000000000000000000000000000:2101 0A 1005', '0000000000000000FFFF00000100007F:2102 0A 1006']
  )
  assert.deepEqual(listenerUids('127.0.0.1', 0x20FD, dir), [1001])
  assert.deepEqual(listenerUids('localhost', 0x20FD, dir), [1001])
  assert.deepEqual(listenerUids('127.0.0.1', 0x1F90, dir), [0], '0.0.0.0 takes 127.0.0.1')
  assert.deepEqual(listenerUids('127.0.0.1', 0x20FE, dir), [], 'an established connection is no listener')
  assert.deepEqual(listenerUids('127.0.0.1', 0x20FF, dir), [], '127.0.0.2 is another address')
  assert.deepEqual(listenerUids('::1', 0x2100, dir), [1004])
  assert.deepEqual(listenerUids('127.0.0.1', 0x2100, dir), [])
  assert.deepEqual(listenerUids('127.0.0.1', 0x2101, dir), [1005], '[::] dual-stack takes 127.0.0.1')
  assert.deepEqual(listenerUids('127.0.0.1', 0x2102, dir), [1006], 'a v4-mapped listener')
  assert.equal(listenerUids('127.0.0.1', 0x20FD, path.join(dir, 'none')), undefined, 'no tables: not Linux')
})

test('on this machine: a port this process listens on is found with its uid', async () => {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const port = (server.address() as { port: number }).port
    const uids = listenerUids('127.0.0.1', port)
    if (uids === undefined) return // not Linux
    assert.deepEqual(uids, [process.getuid?.()])
  } finally {
    server.close()
  }
})
