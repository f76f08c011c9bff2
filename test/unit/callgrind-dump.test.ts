import assert from 'node:assert/strict'
import { test } from 'node:test'
import { readDump } from '../../benchmarks/callgrind.js'

// A callgrind dump as valgrind writes it: names compressed after their first use, the cost line
// after `calls=` the inclusive cost of that call.
const DUMP = [
  'version: 1',
  'creator: callgrind-3.19.0',
  'pid: 42',
  'positions: line',
  'events: Ir',
  'summary: 10000',
  '',
  'ob=(1) /usr/bin/node',
  'fl=(1) ???',
  'fn=(1) Builtins_InterpreterEntryTrampoline',
  '0 500',
  'cfn=(2) v8::internal::Compiler::CompileOptimized(v8::internal::Isolate*)',
  'calls=1 0',
  '0 3000',
  'cfn=(3) malloc',
  'calls=2 0',
  '0 200',
  '+1 100',
  'fn=(2)',
  '0 1000',
  // A call between compile entry points is inside the outer one's inclusive cost already.
  'cfn=(4) v8::internal::Compiler::Compile(v8::internal::Isolate*)',
  'calls=1 0',
  '0 1500',
  'cfn=(3)',
  'calls=1 0',
  '0 500',
  'fn=(5) v8::internal::Runtime_CompileLazy',
  '* 10',
  'cfn=(4)',
  'calls=1 0',
  '0 400',
  ''
].join('\n')

test('readDump: the summary is the total; calls into V8\'s Compiler:: entry points from outside them count as compiling', () => {
  assert.deepEqual(readDump(DUMP), { total: 10000, compile: 3400 })
})

test('readDump: a dump without calls into the compiler counts none', () => {
  assert.deepEqual(readDump('summary: 77\nfn=(1) main\n0 77\n'), { total: 77, compile: 0 })
  assert.deepEqual(readDump(''), { total: 0, compile: 0 })
})
