import assert from 'node:assert/strict'
import tls from 'node:tls'
import { test } from 'node:test'
import { certificateKey, StapleStore } from '../../src/ocsp/staple-store.js'

const leaf = Buffer.from('a certificate, as DER')
const other = Buffer.from('another certificate')
const der = Buffer.from('an OCSP response')

test('a staple is handed out for its own certificate until it expires, never after', async () => {
  const hub = tls.createServer()
  const store = new StapleStore([hub])
  store.set([{ certificate: certificateKey(leaf), der, expiresAt: Date.now() + 60_000 }])
  assert.equal(store.find(leaf), der)
  assert.equal(store.find(other), undefined)
  store.set([{ certificate: certificateKey(leaf), der, expiresAt: Date.now() - 1 }])
  assert.equal(store.find(leaf), undefined)
})

test('the hub\'s OCSPRequest event is answered at once, with or without a staple', async () => {
  const hub = tls.createServer()
  const store = new StapleStore([hub])
  store.set([{ certificate: certificateKey(leaf), der, expiresAt: Date.now() + 60_000 }])
  const ask = async (certificate: Buffer | null): Promise<Buffer | undefined> => await new Promise((resolve, reject) => {
    hub.emit('OCSPRequest', certificate, null, (err: Error | null, response?: Buffer) => { if (err !== null) reject(err); else resolve(response) })
  })
  assert.equal(await ask(leaf), der)
  assert.equal(await ask(other), undefined)
  assert.equal(await ask(null), undefined)
})
