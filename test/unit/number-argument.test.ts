import assert from 'node:assert/strict'
import { test } from 'node:test'
import { numberArgument } from '../../src/cli/number-argument.js'

test('integers in decimal digits within the range are read; anything Number() would bend is refused with the name, the text and the range', () => {
  assert.equal(numberArgument('--n', '0', 0, 10), 0)
  assert.equal(numberArgument('--n', '10', 0, 10), 10)
  assert.equal(numberArgument('--n', '007', 0, 10), 7)
  for (const text of ['', ' ', ' 5', '5 ', '0x5', '5e0', '+5', '-0', '5.0', '11', 'five', 'Infinity']) {
    assert.equal(numberArgument('--n', text, 0, 10), `--n: ${JSON.stringify(text)} is not an integer from 0 to 10`, JSON.stringify(text))
  }
})

test('decimals take a fraction and keep the bounds', () => {
  assert.equal(numberArgument('--t', '0.5', 0.1, 600, 'decimal'), 0.5)
  assert.equal(numberArgument('--t', '600', 0.1, 600, 'decimal'), 600)
  for (const text of ['', '.5', '5.', '0.05', '600.1', '1e2', '0x1']) {
    assert.equal(numberArgument('--t', text, 0.1, 600, 'decimal'), `--t: ${JSON.stringify(text)} is not a number from 0.1 to 600`, JSON.stringify(text))
  }
})
