import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import fc from 'fast-check'
import {
  encodeProxyV1,
  encodeProxyV2,
  parseProxyHeader,
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_SIGNATURE,
  type ProxyHeader,
  type ProxyMode,
  type ProxyParseResult
} from '../../src/proxy/proxy-protocol.js'
import { crc32c } from '../../src/proxy/crc32c.js'

type ParseMode = Exclude<ProxyMode, 'off'>
const MODES: ParseMode[] = ['v1', 'v2', 'auto']

// --- helpers ----------------------------------------------------------------------------------

function u16 (n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

/** A raw v2 header: signature, version/command, family, declared length (default: body size). */
function v2 (verCmd: number, family: number, body: Buffer, declared = body.length): Buffer {
  return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([verCmd, family]), u16(declared), body])
}

function tlv (type: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type]), u16(value.length), value])
}

function unixBlock (src: string, dst: string): Buffer {
  const block = Buffer.alloc(216)
  block.write(src, 0, 'utf8')
  block.write(dst, 108, 'utf8')
  return block
}

function ok (result: ProxyParseResult): { header: ProxyHeader; length: number } {
  assert.equal(result.status, 'ok', `expected ok, got ${JSON.stringify(result)}`)
  if (result.status !== 'ok') throw new Error('unreachable')
  return { header: result.header, length: result.length }
}

function error (buf: Buffer | string, mode: ParseMode = 'auto', max?: number): string {
  const result = parseProxyHeader(typeof buf === 'string' ? Buffer.from(buf, 'latin1') : buf, mode, max)
  assert.equal(result.status, 'error', `expected error, got ${JSON.stringify(result)}`)
  return result.status === 'error' ? result.reason : ''
}

function parse (buf: Buffer | string, mode: ParseMode = 'auto'): ProxyParseResult {
  return parseProxyHeader(typeof buf === 'string' ? Buffer.from(buf, 'latin1') : buf, mode)
}

const CLIENT_HELLO_PREFIX = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])

// Valid headers of both versions, used for split points, prefix stability and mutation.
const VALID_V1: Array<[string, Buffer]> = [
  ['v1 TCP4', Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n')],
  ['v1 TCP6', Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n')],
  ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n')],
  ['v1 UNKNOWN with data', Buffer.from('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n')],
  ['v1 longest TCP6 (104 bytes)',
    Buffer.from('PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n')]
]
const VALID_V2: Array<[string, Buffer]> = [
  ['v2 TCP4', encodeProxyV2({ address: '10.0.0.1', port: 1234 }, { address: '10.0.0.2', port: 443 })],
  ['v2 TCP6 + TLVs', encodeProxyV2({ address: '2001:db8::1', port: 1 }, { address: '::1', port: 8443 },
    [{ type: 0x01, value: Buffer.from('h2') }, { type: 0x04, value: Buffer.alloc(0) }])],
  ['v2 LOCAL', encodeProxyV2(undefined, undefined)],
  ['v2 LOCAL + TLV', encodeProxyV2(undefined, undefined, [{ type: 0x05, value: Buffer.from('id') }])],
  ['v2 TCP4 + CRC32C', encodeProxyV2({ address: '10.0.0.1', port: 1234 }, { address: '10.0.0.2', port: 443 }, [{ type: 0x03, value: Buffer.alloc(4) }])],
  ['v2 unix + TLV', v2(0x21, 0x31, Buffer.concat([unixBlock('/run/a.sock', '/run/b.sock'), tlv(0x02, Buffer.from('example.com'))]))],
  ['v2 unspec PROXY', v2(0x21, 0x00, Buffer.alloc(0))]
]

// --- v1 ---------------------------------------------------------------------------------------

describe('PROXY v1', () => {
  it('parses TCP4 and reports the header length (payload after it untouched)', () => {
    const line = 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'
    for (const mode of ['v1', 'auto'] as const) {
      const { header, length } = ok(parse(line + 'GET / HTTP/1.1\r\n', mode))
      assert.equal(length, line.length)
      assert.deepEqual(header, {
        version: 1,
        command: 'proxy',
        family: 'tcp4',
        source: { address: '192.168.0.1', port: 56324 },
        destination: { address: '192.168.0.11', port: 443 },
        tlvs: []
      })
    }
  })

  it('parses TCP6 and canonicalizes the addresses the way Node formats them', () => {
    const { header, length } = ok(parse('PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::FFFF:0102:0304 0 65535\r\n'))
    assert.equal(length, 'PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::FFFF:0102:0304 0 65535\r\n'.length)
    assert.equal(header.family, 'tcp6')
    assert.deepEqual(header.source, { address: '2001:db8::1', port: 0 })
    assert.deepEqual(header.destination, { address: '::ffff:1.2.3.4', port: 65535 })
  })

  it('parses the longest lines: TCP6 with full addresses (104 bytes), UNKNOWN with them (107)', () => {
    const [, longest] = VALID_V1[4]!
    assert.equal(longest.length, 104)
    const { header, length } = ok(parse(longest, 'v1'))
    assert.equal(length, 104)
    assert.equal(header.source?.address, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')
    const unknown = Buffer.from(longest.toString().replace('TCP6', 'UNKNOWN'))
    assert.equal(unknown.length, PROXY_V1_MAX_LENGTH)
    assert.equal(ok(parse(unknown, 'v1')).length, 107)
  })

  it('parses UNKNOWN, bare or followed by anything, with no addresses', () => {
    for (const line of ['PROXY UNKNOWN\r\n', 'PROXY UNKNOWN whatever 1 2 3 garbage\r\n', 'PROXY UNKNOWN \r\n']) {
      const { header, length } = ok(parse(line + '\x16\x03\x01'))
      assert.equal(length, line.length)
      assert.deepEqual(header, { version: 1, command: 'local', family: 'unspec', tlvs: [] })
      assert.equal('source' in header, false)
    }
  })

  it('accepts ports 0 and 65535', () => {
    const { header } = ok(parse('PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n'))
    assert.equal(header.source?.port, 0)
    assert.equal(header.destination?.port, 65535)
  })
})

// --- v2 ---------------------------------------------------------------------------------------

describe('PROXY v2', () => {
  it('parses TCP4', () => {
    const body = Buffer.from([127, 0, 0, 1, 10, 1, 2, 3, 0xdc, 0x05, 0x01, 0xbb])
    const buf = Buffer.concat([v2(0x21, 0x11, body), Buffer.from('rest')])
    for (const mode of ['v2', 'auto'] as const) {
      const { header, length } = ok(parse(buf, mode))
      assert.equal(length, 16 + 12)
      assert.deepEqual(header, {
        version: 2,
        command: 'proxy',
        family: 'tcp4',
        source: { address: '127.0.0.1', port: 56325 },
        destination: { address: '10.1.2.3', port: 443 },
        tlvs: []
      })
    }
  })

  it('parses TCP6 with TLVs (canonical compressed IPv6 text)', () => {
    const src = Buffer.from('20010db8000000000000000000000001', 'hex')
    const dst = Buffer.from('00000000000000000000ffff7f000001', 'hex')
    const tlvs = Buffer.concat([tlv(0x01, Buffer.from('h2')), tlv(0x05, Buffer.from('abc')), tlv(0x04, Buffer.alloc(0))])
    const buf = v2(0x21, 0x21, Buffer.concat([src, dst, u16(40000), u16(8443), tlvs]))
    const { header, length } = ok(parse(buf, 'v2'))
    assert.equal(length, buf.length)
    assert.equal(header.family, 'tcp6')
    assert.deepEqual(header.source, { address: '2001:db8::1', port: 40000 })
    assert.deepEqual(header.destination, { address: '::ffff:127.0.0.1', port: 8443 })
    assert.deepEqual(header.tlvs, [
      { type: 0x01, value: Buffer.from('h2') },
      { type: 0x05, value: Buffer.from('abc') },
      { type: 0x04, value: Buffer.alloc(0) }
    ])
  })

  it('parses LOCAL: no addresses even when an address block is present, TLVs kept', () => {
    const body = Buffer.concat([Buffer.alloc(12, 7), tlv(0x04, Buffer.from('x'))])
    const { header, length } = ok(parse(v2(0x20, 0x11, body)))
    assert.equal(length, 16 + body.length)
    assert.deepEqual(header, { version: 2, command: 'local', family: 'unspec', tlvs: [{ type: 0x04, value: Buffer.from('x') }] })

    const bare = ok(parse(v2(0x20, 0x00, Buffer.alloc(0))))
    assert.equal(bare.length, 16)
    assert.deepEqual(bare.header, { version: 2, command: 'local', family: 'unspec', tlvs: [] })
  })

  it('LOCAL ignores the family: datagram or unknown families are accepted, their block opaque', () => {
    const udp = ok(parse(v2(0x20, 0x12, Buffer.alloc(12))))
    assert.equal(udp.header.command, 'local')
    const weird = ok(parse(v2(0x20, 0x77, Buffer.from([1, 2, 3]))))
    assert.equal(weird.length, 19)
    assert.deepEqual(weird.header.tlvs, [])
  })

  it('parses unix stream sockets with TLVs (paths up to the NUL, abstract names with @)', () => {
    const body = Buffer.concat([unixBlock('/run/client.sock', '\0abstract'), tlv(0x02, Buffer.from('example.com'))])
    const { header, length } = ok(parse(v2(0x21, 0x31, body)))
    assert.equal(length, 16 + 216 + 14)
    assert.equal(header.family, 'unix')
    assert.deepEqual(header.source, { address: '/run/client.sock', port: 0 })
    assert.deepEqual(header.destination, { address: '@abstract', port: 0 })
    assert.deepEqual(header.tlvs, [{ type: 0x02, value: Buffer.from('example.com') }])
  })

  it('a Unix socket path goes back out byte for byte, whatever its bytes (a path is no UTF-8 text)', () => {
    const path = Buffer.alloc(108, 0xff)
    const body = Buffer.concat([path, Buffer.from('/run/b.sock'), Buffer.alloc(108 - 11)])
    const { header } = ok(parse(v2(0x21, 0x31, body)))
    const out = encodeProxyV2(header.source, header.destination, [], 'unix')
    assert.deepEqual(out.subarray(16, 16 + 216), body)
  })

  it('TLV values are copies: reusing the input buffer does not change them', () => {
    const buf = encodeProxyV2({ address: '1.2.3.4', port: 1 }, { address: '5.6.7.8', port: 2 }, [{ type: 1, value: Buffer.from('h2') }])
    const { header } = ok(parse(buf))
    buf.fill(0)
    assert.deepEqual(header.tlvs, [{ type: 1, value: Buffer.from('h2') }])
  })

  it('accepts a header of exactly maxV2Length and rejects one byte more', () => {
    const body = Buffer.concat([Buffer.alloc(12), tlv(0x04, Buffer.alloc(100 - 12 - 3))])
    assert.equal(body.length, 100)
    assert.equal(ok(parseProxyHeader(v2(0x21, 0x11, body), 'v2', 100)).length, 116)
    assert.equal(error(v2(0x21, 0x11, body), 'v2', 99), 'v2_too_long')
  })
})

// --- incomplete -------------------------------------------------------------------------------

describe('incomplete input', () => {
  it('an empty buffer is incomplete in every mode', () => {
    for (const mode of MODES) assert.deepEqual(parseProxyHeader(Buffer.alloc(0), mode), { status: 'incomplete' })
  })

  for (const [name, header] of [...VALID_V1, ...VALID_V2]) {
    it(`${name}: every strict prefix is incomplete, the whole header is ok`, () => {
      const modes: ParseMode[] = name.startsWith('v1') ? ['v1', 'auto'] : ['v2', 'auto']
      for (const mode of modes) {
        for (let i = 1; i < header.length; i++) {
          assert.deepEqual(parseProxyHeader(header.subarray(0, i), mode), { status: 'incomplete' }, `${mode}, ${i} of ${header.length} bytes`)
        }
        assert.equal(ok(parseProxyHeader(header, mode)).length, header.length)
      }
    })
  }

  it('a v2 header waits for its declared body once the fixed header is in', () => {
    const buf = v2(0x21, 0x11, Buffer.alloc(12), 12)
    assert.deepEqual(parse(buf.subarray(0, 16)), { status: 'incomplete' })
    assert.deepEqual(parse(buf.subarray(0, 27)), { status: 'incomplete' })
  })
})

// --- round trips ------------------------------------------------------------------------------

describe('encode → parse round trips', () => {
  const cases: Array<[string, string, 'tcp4' | 'tcp6']> = [
    ['192.0.2.1', '198.51.100.7', 'tcp4'],
    ['0.0.0.0', '255.255.255.255', 'tcp4'],
    ['2001:db8::1', '2001:db8::2', 'tcp6'],
    ['::1', '::', 'tcp6'],
    ['fe80::1:2:3:4', '2001:db8:0:1::', 'tcp6']
  ]
  for (const [src, dst, family] of cases) {
    it(`${src} → ${dst} (${family}), v1 and v2`, () => {
      const source = { address: src, port: 51000 }
      const destination = { address: dst, port: 443 }
      const one = encodeProxyV1(source, destination)
      assert.equal(one.toString(), `PROXY ${family.toUpperCase()} ${src} ${dst} 51000 443\r\n`)
      const two = encodeProxyV2(source, destination)
      for (const [buf, version] of [[one, 1], [two, 2]] as const) {
        const { header, length } = ok(parse(buf))
        assert.equal(length, buf.length)
        assert.equal(header.version, version)
        assert.equal(header.command, 'proxy')
        assert.equal(header.family, family)
        assert.deepEqual(header.source, source)
        assert.deepEqual(header.destination, destination)
      }
    })
  }

  it('IPv4-mapped IPv6 addresses are sent as TCP4', () => {
    const source = { address: '::ffff:1.2.3.4', port: 1000 }
    const destination = { address: '::ffff:127.0.0.1', port: 443 }
    assert.equal(encodeProxyV1(source, destination).toString(), 'PROXY TCP4 1.2.3.4 127.0.0.1 1000 443\r\n')
    const { header } = ok(parse(encodeProxyV2(source, destination)))
    assert.equal(header.family, 'tcp4')
    assert.deepEqual(header.source, { address: '1.2.3.4', port: 1000 })
    assert.deepEqual(header.destination, { address: '127.0.0.1', port: 443 })
  })

  it('mixed families become TCP6 with the IPv4 end mapped; zone ids are dropped', () => {
    const line = encodeProxyV1({ address: '1.2.3.4', port: 1 }, { address: 'fe80::1%eth0', port: 2 }).toString()
    assert.equal(line, 'PROXY TCP6 ::ffff:1.2.3.4 fe80::1 1 2\r\n')
  })

  it('non-canonical IPv6 input is canonicalized by the encoder', () => {
    const line = encodeProxyV1({ address: '2001:DB8:0:0:0:0:0:1', port: 1 }, { address: '0:0:0:0:0:0:0:1', port: 2 }).toString()
    assert.equal(line, 'PROXY TCP6 2001:db8::1 ::1 1 2\r\n')
  })

  it('v2 LOCAL: undefined addresses, AF_UNSPEC, TLVs preserved', () => {
    const buf = encodeProxyV2(undefined, undefined, [{ type: 0x20, value: Buffer.from([1, 2, 3]) }])
    assert.deepEqual(buf.subarray(12, 16), Buffer.from([0x20, 0x00, 0x00, 0x06]))
    const { header } = ok(parse(buf, 'v2'))
    assert.deepEqual(header, { version: 2, command: 'local', family: 'unspec', tlvs: [{ type: 0x20, value: Buffer.from([1, 2, 3]) }] })
  })

  it('v2 wire format of a TCP4 header matches the spec byte for byte', () => {
    const buf = encodeProxyV2({ address: '1.2.3.4', port: 0x1234 }, { address: '5.6.7.8', port: 443 })
    assert.equal(buf.toString('hex'), '0d0a0d0a000d0a515549540a' + '21' + '11' + '000c' + '01020304' + '05060708' + '1234' + '01bb')
  })

  it('v2 passes a Unix socket client on (AF_UNIX, paths and abstract names), byte for byte as it came', () => {
    const body = Buffer.concat([unixBlock('/run/client.sock', '\0abstract'), tlv(0x02, Buffer.from('example.com'))])
    const incoming = v2(0x21, 0x31, body)
    const { header } = ok(parse(incoming))
    const out = encodeProxyV2(header.source, header.destination, header.tlvs, 'unix')
    assert.deepEqual(out, incoming)
    assert.throws(() => encodeProxyV2({ address: '/' + 'x'.repeat(108), port: 0 }, { address: '/a', port: 0 }, [], 'unix'), /longer than 108 bytes/)
  })

  it('encoders refuse invalid addresses, ports and TLVs', () => {
    assert.throws(() => encodeProxyV1({ address: 'localhost', port: 1 }, { address: '1.2.3.4', port: 2 }), /source address/)
    assert.throws(() => encodeProxyV1({ address: '1.2.3.4', port: 65536 }, { address: '1.2.3.4', port: 2 }), /source port/)
    assert.throws(() => encodeProxyV2({ address: '1.2.3.4', port: 1 }, { address: '1.2.3.4', port: -1 }), /destination port/)
    assert.throws(() => encodeProxyV2(undefined, undefined, [{ type: 256, value: Buffer.alloc(0) }]), /TLV type/)
    assert.throws(() => encodeProxyV2(undefined, undefined, [{ type: 1, value: Buffer.alloc(70000) }]), /65535/)
  })

  it('property: random IPv4/IPv6 endpoints round-trip through both encoders', () => {
    const canonical = (a: string): string => net.isIPv4(a) ? a : new net.SocketAddress({ address: a, family: 'ipv6' }).address
    const isMapped = (a: string): boolean => /^::ffff:\d+\.\d+\.\d+\.\d+$/.test(a)
    fc.assert(fc.property(
      fc.oneof(fc.ipV4(), fc.ipV6()), fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }),
      (src, dst, sport, dport) => {
        const s = canonical(src)
        const d = canonical(dst)
        // Only inputs the encoder keeps as-is: same family, not IPv4-mapped (those become TCP4).
        fc.pre(net.isIPv4(s) === net.isIPv4(d) && !isMapped(s) && !isMapped(d))
        for (const buf of [encodeProxyV1({ address: s, port: sport }, { address: d, port: dport }),
          encodeProxyV2({ address: s, port: sport }, { address: d, port: dport })]) {
          const result = parseProxyHeader(buf, 'auto')
          if (result.status !== 'ok') return false
          assert.deepEqual(result.header.source, { address: s, port: sport })
          assert.deepEqual(result.header.destination, { address: d, port: dport })
          assert.equal(result.length, buf.length)
        }
        return true
      }
    ), { numRuns: 300 })
  })
})

// --- errors -----------------------------------------------------------------------------------

describe('errors', () => {
  it('bad_signature: the wrong version or no header in a strict mode', () => {
    const v2Header = encodeProxyV2(undefined, undefined)
    assert.equal(error(v2Header, 'v1'), 'bad_signature')
    assert.equal(error(Buffer.from([0x0d]), 'v1'), 'bad_signature')
    assert.equal(error('PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r\n', 'v2'), 'bad_signature')
    assert.equal(error('P', 'v2'), 'bad_signature')
    assert.equal(error('GET / HTTP/1.1\r\n', 'v1'), 'bad_signature')
    assert.equal(error(CLIENT_HELLO_PREFIX, 'v2'), 'bad_signature')
    assert.equal(error('PROXY\tTCP4', 'v1'), 'bad_signature')
    assert.equal(error('proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n', 'v1'), 'bad_signature')
    assert.equal(error(Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b]), 'v2'), 'bad_signature')
  })

  it('v1_too_long: no CRLF within 107 bytes, or a CRLF that ends past byte 107', () => {
    assert.equal(error('PROXY UNKNOWN ' + 'x'.repeat(93)), 'v1_too_long') // exactly 107 bytes, no CR
    assert.equal(error('PROXY UNKNOWN ' + 'x'.repeat(500)), 'v1_too_long')
    assert.equal(error('PROXY UNKNOWN ' + 'x'.repeat(92) + '\r\n'), 'v1_too_long') // 108 with CRLF
    assert.equal(error('PROXY UNKNOWN ' + 'x'.repeat(92) + '\r'), 'v1_too_long') // CR at index 106
    assert.equal(ok(parse('PROXY UNKNOWN ' + 'x'.repeat(91) + '\r\n')).length, 107)
    // One byte short of the limit without a CRLF is still worth waiting for.
    assert.deepEqual(parse('PROXY UNKNOWN ' + 'x'.repeat(92)), { status: 'incomplete' })
  })

  it('v2_too_long: decided from the 16-byte fixed header alone', () => {
    const fixed = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11]), u16(1025)])
    assert.equal(error(fixed, 'v2'), 'v2_too_long')
    assert.equal(error(fixed, 'auto'), 'v2_too_long')
    assert.equal(error(Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11]), u16(0xffff)])), 'v2_too_long')
    // With a larger cap the same header is just waiting for its body.
    assert.deepEqual(parseProxyHeader(fixed, 'v2', 2048), { status: 'incomplete' })
    assert.deepEqual(parseProxyHeader(Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11]), u16(1024)]), 'v2'), { status: 'incomplete' })
  })

  it('bad_address', () => {
    for (const line of [
      'PROXY TCP4 256.1.1.1 1.2.3.4 1 2\r\n',
      'PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n',
      'PROXY TCP4 ::1 1.2.3.4 1 2\r\n',
      'PROXY TCP4 1.2.3.4 localhost 1 2\r\n',
      'PROXY TCP6 1.2.3.4 ::1 1 2\r\n',
      'PROXY TCP6 ::1 fe80::1%eth0 1 2\r\n',
      'PROXY TCP6 ::1 1:2:3:4:5:6:7:8:9 1 2\r\n'
    ]) assert.equal(error(line), 'bad_address', line)
  })

  it('bad_port', () => {
    for (const port of ['65536', '+80', '-1', '080', '00', '1e3', '0x10', '99999999999', '８０']) {
      assert.equal(error(`PROXY TCP4 1.2.3.4 5.6.7.8 ${port} 443\r\n`), 'bad_port', port)
      assert.equal(error(`PROXY TCP4 1.2.3.4 5.6.7.8 443 ${port}\r\n`), 'bad_port', port)
    }
  })

  it('bad_family: v1 protocols other than TCP4/TCP6/UNKNOWN; v2 datagram or unknown families', () => {
    assert.equal(error('PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n'), 'bad_family')
    assert.equal(error('PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n'), 'bad_family')
    assert.equal(error('PROXY UNKNOWNX\r\n'), 'bad_family')
    assert.equal(error('PROXY \r\n'), 'bad_family')
    assert.equal(error('PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'bad_family')
    for (const fam of [0x12, 0x22, 0x32, 0x01, 0x10, 0x13, 0x41, 0xff]) {
      assert.equal(error(v2(0x21, fam, Buffer.alloc(216))), 'bad_family', `family 0x${fam.toString(16)}`)
    }
  })

  it('bad_format: v1 fields separated by anything but single spaces, or the wrong count', () => {
    for (const line of [
      'PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n',
      'PROXY TCP4\r\n'
    ]) assert.equal(error(line), 'bad_format', line)
    assert.equal(error('PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n'), 'bad_format')
  })

  it('bad_crlf: a bare LF, or a CR not followed by LF', () => {
    assert.equal(error('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), 'bad_crlf')
    assert.equal(error('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX'), 'bad_crlf')
    assert.equal(error('PROXY UNKNOWN\r\r\n'), 'bad_crlf')
  })

  it('bad_version and bad_command in the v2 version/command byte', () => {
    for (const verCmd of [0x11, 0x31, 0x01, 0xf1, 0x10]) assert.equal(error(v2(verCmd, 0x11, Buffer.alloc(12))), 'bad_version')
    for (const verCmd of [0x22, 0x2f]) assert.equal(error(v2(verCmd, 0x11, Buffer.alloc(12))), 'bad_command')
  })

  it('bad_length: declared length shorter than the address block', () => {
    assert.equal(error(v2(0x21, 0x11, Buffer.alloc(11))), 'bad_length')
    assert.equal(error(v2(0x21, 0x21, Buffer.alloc(12))), 'bad_length')
    assert.equal(error(v2(0x21, 0x31, Buffer.alloc(215))), 'bad_length')
    // Known from the fixed header: no need to wait for the body.
    assert.equal(error(Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x21]), u16(0)])), 'bad_length')
  })

  it('bad_tlv: a TLV that overruns the block, or a truncated TLV header', () => {
    const addr = Buffer.alloc(12)
    assert.equal(error(v2(0x21, 0x11, Buffer.concat([addr, Buffer.from([0x01, 0x00, 0x05, 0x61])]))), 'bad_tlv')
    assert.equal(error(v2(0x21, 0x11, Buffer.concat([addr, Buffer.from([0x01])]))), 'bad_tlv')
    assert.equal(error(v2(0x21, 0x11, Buffer.concat([addr, tlv(1, Buffer.from('ok')), Buffer.from([0x04, 0x00])]))), 'bad_tlv')
    assert.equal(error(v2(0x20, 0x00, Buffer.from([0x04, 0xff, 0xff]))), 'bad_tlv')
    // A TLV that would overrun the declared length but is followed by more bytes on the wire.
    const wire = Buffer.concat([v2(0x21, 0x11, Buffer.concat([addr, Buffer.from([0x01, 0x00, 0x02, 0x61])])), Buffer.from('b')])
    assert.equal(error(wire), 'bad_tlv')
  })
})

// --- CRC32C -----------------------------------------------------------------------------------

/**
 * A v2 header whose TLVs are `before`, a CRC32C TLV, then `after`, its checksum computed as the
 * spec says (over the whole header, the value zero), independently of the encoder.
 */
function signed (verCmd: number, family: number, addresses: Buffer, before: Buffer[] = [], after: Buffer[] = []): { header: Buffer; valueAt: number } {
  const header = v2(verCmd, family, Buffer.concat([addresses, ...before, tlv(0x03, Buffer.alloc(4)), ...after]))
  const valueAt = 16 + addresses.length + before.reduce((n, b) => n + b.length, 0) + 3
  header.writeUInt32BE(crc32c(header), valueAt)
  return { header, valueAt }
}

const TCP4_ADDRESSES = Buffer.from('c0000201' + 'c6336407' + '9c40' + '01bb', 'hex')

describe('CRC32C TLV (0x03)', () => {
  it('a header with the right checksum is accepted, the TLV kept; bytes after the header do not count', () => {
    const { header, valueAt } = signed(0x21, 0x11, TCP4_ADDRESSES)
    const { header: h, length } = ok(parse(Buffer.concat([header, CLIENT_HELLO_PREFIX]), 'v2'))
    assert.equal(length, header.length)
    assert.deepEqual(h.source, { address: '192.0.2.1', port: 40000 })
    assert.deepEqual(h.tlvs, [{ type: 0x03, value: header.subarray(valueAt, valueAt + 4) }])
  })

  it('HAProxy 2.6\'s own header (a check\'s LOCAL with proxy-v2-options crc32c) is accepted; a changed checksum is not', () => {
    const haproxy = Buffer.from('0d0a0d0a000d0a515549540a' + '20' + '00' + '0007' + '030004' + 'a9b87e8f', 'hex')
    assert.deepEqual(ok(parse(haproxy, 'v2')).header.tlvs, [{ type: 0x03, value: Buffer.from('a9b87e8f', 'hex') }])
    assert.equal(error(Buffer.concat([haproxy.subarray(0, -1), Buffer.from([0x8e])]), 'v2'), 'bad_crc32c')
  })

  it('one flipped bit in the addresses or in any TLV value (the checksum\'s own included) is bad_crc32c', () => {
    // Addresses 16-27; TLVs: ALPN at 28 (value 31-32), CRC32C at 33 (value 36-39), UNIQUE_ID at 40 (value 43-46).
    const { header } = signed(0x21, 0x11, TCP4_ADDRESSES, [tlv(0x01, Buffer.from('h2'))], [tlv(0x05, Buffer.from('id-1'))])
    assert.equal(header.length, 47)
    const typesAndLengths = new Set([28, 29, 30, 33, 34, 35, 40, 41, 42])
    for (let i = 16; i < header.length; i++) {
      if (typesAndLengths.has(i)) continue
      for (const bit of [0x01, 0x80]) {
        const flipped = Buffer.from(header)
        flipped[i] = (flipped[i] as number) ^ bit
        assert.equal(error(flipped, 'v2'), 'bad_crc32c', `byte ${i}, bit ${bit}`)
      }
    }
  })

  it('a corrupted type or length of a neighbouring TLV is refused too (bad_crc32c or bad_tlv, never accepted)', () => {
    const { header } = signed(0x21, 0x11, TCP4_ADDRESSES, [tlv(0x01, Buffer.from('h2'))], [tlv(0x05, Buffer.from('id-1'))])
    for (const i of [28, 29, 30, 40, 41, 42]) {
      const flipped = Buffer.from(header)
      flipped[i] = (flipped[i] as number) ^ 0x01
      assert.ok(['bad_crc32c', 'bad_tlv'].includes(error(flipped, 'v2')), `byte ${i}`)
    }
  })

  it('a CRC32C TLV of another length than 4, or a second one, is bad_tlv', () => {
    for (const length of [0, 3, 5, 8]) {
      assert.equal(error(v2(0x21, 0x11, Buffer.concat([TCP4_ADDRESSES, tlv(0x03, Buffer.alloc(length))]))), 'bad_tlv', `${length} bytes`)
    }
    const { header } = signed(0x21, 0x11, TCP4_ADDRESSES, [], [tlv(0x03, Buffer.alloc(4))])
    assert.equal(error(header), 'bad_tlv')
  })

  it('with other TLVs around it, on TCP6, Unix and LOCAL headers (HAProxy\'s checks send one)', () => {
    const before = [tlv(0x01, Buffer.from('http/1.1')), tlv(0x02, Buffer.from('app.example'))]
    const after = [tlv(0x20, Buffer.from('0100000000', 'hex')), tlv(0x04, Buffer.alloc(0))]
    const cases: Array<[string, number, number, Buffer]> = [
      ['TCP4', 0x21, 0x11, TCP4_ADDRESSES],
      ['TCP6', 0x21, 0x21, Buffer.concat([Buffer.alloc(15), Buffer.from([1]), Buffer.alloc(15), Buffer.from([2]), u16(1), u16(443)])],
      ['unix', 0x21, 0x31, unixBlock('/run/a.sock', '/run/b.sock')],
      ['LOCAL', 0x20, 0x00, Buffer.alloc(0)]
    ]
    for (const [name, verCmd, family, addresses] of cases) {
      const { header, valueAt } = signed(verCmd, family, addresses, before, after)
      const { header: h } = ok(parse(header, 'v2'))
      assert.deepEqual(h.tlvs.map((t) => t.type), [0x01, 0x02, 0x03, 0x20, 0x04], name)
      assert.equal(h.tlvs[1]?.value.toString(), 'app.example', name)
      assert.equal(h.tlvs[2]?.value.readUInt32BE(0), header.readUInt32BE(valueAt), name)
      // A changed authority (the last byte of 'app.example') no longer matches.
      const forged = Buffer.from(header)
      forged[16 + addresses.length + before[0]!.length + 3 + 10] = 0x46
      assert.equal(error(forged, 'v2'), 'bad_crc32c', name)
    }
  })

  it('the checked buffer is left as it came (its checksum bytes are not zeroed)', () => {
    const { header } = signed(0x21, 0x11, TCP4_ADDRESSES, [tlv(0x01, Buffer.from('h2'))])
    const copy = Buffer.from(header)
    ok(parse(header, 'v2'))
    assert.deepEqual(header, copy)
    assert.equal(error(Buffer.concat([header.subarray(0, -1), Buffer.from([(header.at(-1) as number) ^ 0xff])]), 'v2'), 'bad_crc32c')
  })

  it('encodeProxyV2 writes the checksum of a CRC32C TLV (whatever value it was given) and refuses a malformed one', () => {
    const tlvs = [{ type: 0x01, value: Buffer.from('h2') }, { type: 0x03, value: Buffer.from('ffffffff', 'hex') }]
    const header = encodeProxyV2({ address: '192.0.2.1', port: 40000 }, { address: '198.51.100.7', port: 443 }, tlvs)
    assert.deepEqual(header, signed(0x21, 0x11, TCP4_ADDRESSES, [tlv(0x01, Buffer.from('h2'))]).header)
    assert.equal(tlvs[1]?.value.toString('hex'), 'ffffffff', 'the given TLV is not written to')
    const local = encodeProxyV2(undefined, undefined, [{ type: 0x03, value: Buffer.alloc(4) }])
    assert.deepEqual(local, signed(0x20, 0x00, Buffer.alloc(0)).header)
    assert.throws(() => encodeProxyV2(undefined, undefined, [{ type: 0x03, value: Buffer.alloc(2) }]), /CRC32C TLV: one only, of 4 bytes/)
    assert.throws(() => encodeProxyV2(undefined, undefined, [{ type: 0x03, value: Buffer.alloc(4) }, { type: 0x03, value: Buffer.alloc(4) }]), /CRC32C TLV: one only/)
  })
})

// --- auto mode --------------------------------------------------------------------------------

describe('auto mode', () => {
  it('absent for a TLS ClientHello prefix, whatever its length', () => {
    for (let i = 1; i <= CLIENT_HELLO_PREFIX.length; i++) {
      assert.deepEqual(parse(CLIENT_HELLO_PREFIX.subarray(0, i)), { status: 'absent' })
    }
  })

  it('absent for plain HTTP and near misses of either signature', () => {
    assert.deepEqual(parse('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), { status: 'absent' })
    assert.deepEqual(parse('POST / HTTP/1.1\r\n'), { status: 'absent' })
    assert.deepEqual(parse('PROXX TCP4'), { status: 'absent' })
    assert.deepEqual(parse('PROXY\r\n'), { status: 'absent' })
    assert.deepEqual(parse(Buffer.from([0x0d, 0x0a, 0x0d, 0x0b])), { status: 'absent' })
    assert.deepEqual(parse(Buffer.from([0x00])), { status: 'absent' })
  })

  it('incomplete while the bytes are still a prefix of either signature', () => {
    assert.deepEqual(parse('PRO'), { status: 'incomplete' })
    assert.deepEqual(parse('PROXY '), { status: 'incomplete' })
    assert.deepEqual(parse(Buffer.from([0x0d, 0x0a, 0x0d])), { status: 'incomplete' })
    assert.deepEqual(parse('PRO', 'v1'), { status: 'incomplete' })
  })
})

// --- properties -------------------------------------------------------------------------------

const STATUSES = new Set(['incomplete', 'absent', 'ok', 'error'])

/** The invariants every result must satisfy, whatever the input. */
function checkInvariants (buf: Buffer, mode: ParseMode, result: ProxyParseResult, max = 1024): void {
  assert.ok(STATUSES.has(result.status), JSON.stringify(result))
  if (result.status === 'ok') {
    assert.ok(result.length > 0 && result.length <= buf.length, `length ${result.length} of ${buf.length}`)
    if (result.header.version === 1) assert.ok(result.length <= PROXY_V1_MAX_LENGTH)
    else assert.ok(result.length <= 16 + max)
    // More bytes after a complete header never change the verdict.
    const again = parseProxyHeader(Buffer.concat([buf, Buffer.from('trailing')]), mode, max)
    assert.deepEqual(again, result)
  }
  if (result.status === 'incomplete') assert.ok(buf.length < Math.max(PROXY_V1_MAX_LENGTH, 16 + max), `incomplete at ${buf.length} bytes`)
  if (result.status === 'absent') assert.equal(mode, 'auto')
  if (result.status === 'error') assert.match(result.reason, /^[a-z0-9_]+$/)
}

describe('properties', () => {
  const modeArb = fc.constantFrom<ParseMode>('v1', 'v2', 'auto')

  it('arbitrary bytes never throw and yield one of the four statuses', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), modeArb, (bytes, mode) => {
      const buf = Buffer.from(bytes)
      checkInvariants(buf, mode, parseProxyHeader(buf, mode))
    }), { numRuns: 2000 })
  })

  it('arbitrary bytes behind a valid signature never throw', () => {
    const signature = fc.constantFrom(Buffer.from('PROXY '), Buffer.from('PROXY TCP4 '), Buffer.from('PROXY TCP6 '), PROXY_V2_SIGNATURE,
      Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21])]))
    fc.assert(fc.property(signature, fc.uint8Array({ maxLength: 300 }), modeArb, fc.integer({ min: 0, max: 2000 }), (sig, tail, mode, max) => {
      const buf = Buffer.concat([sig, Buffer.from(tail)])
      checkInvariants(buf, mode, parseProxyHeader(buf, mode, max), max)
    }), { numRuns: 2000 })
  })

  it('mutated and truncated valid headers never throw', () => {
    const valid = [...VALID_V1, ...VALID_V2].map(([, b]) => b)
    const mutation = fc.record({
      base: fc.constantFrom(...valid),
      edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      cut: fc.option(fc.nat()),
      extra: fc.uint8Array({ maxLength: 20 })
    })
    fc.assert(fc.property(mutation, modeArb, ({ base, edits, cut, extra }, mode) => {
      let buf = Buffer.from(base)
      for (const [pos, value] of edits) buf[pos % buf.length] = value
      if (cut !== null) buf = buf.subarray(0, cut % (buf.length + 1))
      buf = Buffer.concat([buf, Buffer.from(extra)])
      checkInvariants(buf, mode, parseProxyHeader(buf, mode))
    }), { numRuns: 3000 })
  })

  it('odd maxV2Length values do not throw', () => {
    const buf = encodeProxyV2({ address: '1.2.3.4', port: 1 }, { address: '5.6.7.8', port: 2 })
    for (const max of [Number.NaN, -1, 1.5, Infinity, 0, 1e9]) {
      const result = parseProxyHeader(buf, 'v2', max)
      assert.ok(STATUSES.has(result.status))
    }
    assert.equal(error(buf, 'v2', 0), 'v2_too_long')
    assert.equal(ok(parseProxyHeader(buf, 'v2', Number.NaN)).length, 28)
  })
})
