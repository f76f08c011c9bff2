import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { listenersOnPort } from '../../src/node/listen-check.js'
import { tempDir } from '../helpers/certs.js'

test('listeners on a port are counted from /proc/net/tcp tables (state 0A), IPv4 and IPv6', () => {
  const dir = tempDir()
  const v4 = path.join(dir, 'tcp')
  const v6 = path.join(dir, 'tcp6')
  const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n'
  fs.writeFileSync(v4, header +
    '   0: 0100007F:20FB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n' +
    '   1: 0100007F:1F90 0100007F:20FB 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0\n')
  fs.writeFileSync(v6, header + '   0: 00000000000000000000000000000000:20FB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n')
  assert.equal(listenersOnPort(0x20fb, [v4, v6]), 2)
  // Port 8080 (1F90) is only a connection's local port, in TIME-WAIT (06): no listener.
  assert.equal(listenersOnPort(8080, [v4, v6]), 0)
  assert.equal(listenersOnPort(8080, [path.join(dir, 'missing')]), undefined)
})
