import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  decode,
  encodeAck,
  encodeData,
  encodeError,
  encodeOack,
  encodeRequest,
  ErrorCode,
  MAX_OPTIONS,
  Opcode,
  TftpDecodeError,
  writeDataHeader,
} from '../../nodes/lib/tftp/codec';

const bytes = (...parts: (string | number[])[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

describe('tftp codec', () => {
  it('decodes the RFC 2347 example request and encodes it back identically', () => {
    // RFC 2347 section "Example": | 1 | foobar | 0 | octet | 0 | blksize | 0 | 1432 | 0 |
    const wire = bytes([0, 1], 'foobar', [0], 'octet', [0], 'blksize', [0], '1432', [0]);
    const p = decode(wire);
    assert.deepEqual(p, { op: Opcode.RRQ, filename: 'foobar', mode: 'octet', options: [{ name: 'blksize', value: '1432' }] });
    assert.deepEqual(encodeRequest(Opcode.RRQ, 'foobar', 'octet', [{ name: 'blksize', value: '1432' }]), wire);
    // ... and its OACK: | 6 | blksize | 0 | 1432 | 0 |
    assert.deepEqual(encodeOack([{ name: 'blksize', value: '1432' }]), bytes([0, 6], 'blksize', [0], '1432', [0]));
  });

  it('lower-cases mode and option names (RFC 2347: case-insensitive), keeps filenames as sent', () => {
    const p = decode(encodeRequest(Opcode.RRQ, 'PXELinux.0', 'OCTET', [{ name: 'BlkSize', value: '1468' }, { name: 'TSIZE', value: '0' }]));
    assert.ok(p.op === Opcode.RRQ);
    assert.equal(p.filename, 'PXELinux.0');
    assert.equal(p.mode, 'octet');
    assert.deepEqual(p.options.map((o) => o.name), ['blksize', 'tsize']);
  });

  it('round-trips DATA, ACK, ERROR and OACK', () => {
    const payload = randomBytes(1468);
    const d = decode(encodeData(70000, payload));
    assert.ok(d.op === Opcode.DATA);
    assert.equal(d.block, 70000 & 0xffff, 'block numbers roll over modulo 65536');
    assert.deepEqual(d.data, payload);
    assert.deepEqual(decode(encodeAck(65535)), { op: Opcode.ACK, block: 65535 });
    assert.deepEqual(decode(encodeAck(65536)), { op: Opcode.ACK, block: 0 });
    assert.deepEqual(decode(encodeError(ErrorCode.FILE_NOT_FOUND, 'File not found')), { op: Opcode.ERROR, code: 1, message: 'File not found' });
    const opts = [{ name: 'blksize', value: '1468' }, { name: 'tsize', value: '123' }, { name: 'windowsize', value: '16' }];
    assert.deepEqual(decode(encodeOack(opts)), { op: Opcode.OACK, options: opts });
    assert.deepEqual(decode(encodeData(1, Buffer.alloc(0))), { op: Opcode.DATA, block: 1, data: Buffer.alloc(0) });
  });

  it('writes DATA headers in place', () => {
    const b = Buffer.alloc(8, 0xaa);
    writeDataHeader(b, 2, 0x1_2345);
    assert.deepEqual([...b], [0xaa, 0xaa, 0, 3, 0x23, 0x45, 0xaa, 0xaa]);
  });

  it('keeps ERROR packets within 512 bytes and without inner NULs', () => {
    const e = encodeError(0, 'x'.repeat(2000));
    assert.equal(e.length, 512);
    assert.equal(e[e.length - 1], 0);
    const p = decode(encodeError(0, 'a\0b'));
    assert.ok(p.op === Opcode.ERROR && p.message === 'a b');
  });

  it('accepts an ERROR without its final NUL and requests padded with NULs', () => {
    assert.deepEqual(decode(bytes([0, 5, 0, 8], 'no')), { op: Opcode.ERROR, code: 8, message: 'no' });
    const p = decode(bytes([0, 1], 'f', [0], 'octet', [0], 'tsize', [0], '0', [0, 0, 0, 0]));
    assert.ok(p.op === Opcode.RRQ && p.options.length === 1);
  });

  it('refuses malformed packets with TftpDecodeError', () => {
    const bad: [string, Buffer][] = [
      ['empty', Buffer.alloc(0)],
      ['one byte', Buffer.from([0])],
      ['unknown opcode', Buffer.from([0, 9, 0, 0])],
      ['opcode 0', Buffer.from([0, 0])],
      ['filename without NUL', bytes([0, 1], 'file')],
      ['mode without NUL', bytes([0, 1], 'file', [0], 'octet')],
      ['empty filename', bytes([0, 1], [0], 'octet', [0])],
      ['empty mode', bytes([0, 1], 'f', [0], [0])],
      ['option without value', bytes([0, 1], 'f', [0], 'octet', [0], 'blksize', [0])],
      ['option value without NUL', bytes([0, 1], 'f', [0], 'octet', [0], 'blksize', [0], '512')],
      ['empty option name then data', bytes([0, 1], 'f', [0], 'octet', [0], [0], 'x', [0])],
      ['short ACK', Buffer.from([0, 4, 1])],
      ['short DATA', Buffer.from([0, 3, 0])],
      ['short ERROR', Buffer.from([0, 5, 0])],
      ['OACK value without NUL', bytes([0, 6], 'blksize', [0], '8')],
    ];
    for (const [what, buf] of bad) assert.throws(() => decode(buf), TftpDecodeError, what);
    const many = encodeRequest(Opcode.RRQ, 'f', 'octet', Array.from({ length: MAX_OPTIONS + 1 }, (_, i) => ({ name: `o${i}`, value: '1' })));
    assert.throws(() => decode(many), /more than/);
  });

  it('refuses NUL inside strings it encodes', () => {
    assert.throws(() => encodeRequest(Opcode.RRQ, 'a\0b', 'octet'), RangeError);
  });

  it('survives a bounded fuzz loop: only TftpDecodeError, never anything else', () => {
    const seeds = [
      encodeRequest(Opcode.RRQ, 'arch/boot/x86_64/vmlinuz-linux', 'octet', [{ name: 'blksize', value: '1468' }, { name: 'tsize', value: '0' }, { name: 'windowsize', value: '16' }]),
      encodeRequest(Opcode.WRQ, 'x', 'netascii'),
      encodeAck(7),
      encodeData(3, randomBytes(100)),
      encodeError(8, 'tsize probe'),
      encodeOack([{ name: 'blksize', value: '512' }]),
    ];
    for (let i = 0; i < 20000; i++) {
      let buf: Buffer;
      const seed = seeds[i % seeds.length]!;
      switch (i % 4) {
        case 0:
          buf = randomBytes(i % 600);
          break;
        case 1:
          buf = seed.subarray(0, i % (seed.length + 1)); // truncated
          break;
        case 2: {
          buf = Buffer.from(seed); // mutated bytes
          for (let k = 0; k < 1 + (i % 5); k++) buf[(i * 31 + k * 7) % buf.length] = (i * 13 + k) & 0xff;
          break;
        }
        default:
          // oversized options: long names and values, many of them
          buf = Buffer.concat([seed.subarray(0, 2), randomBytes(2000 + (i % 60000))]);
      }
      try {
        decode(buf);
      } catch (err) {
        assert.ok(err instanceof TftpDecodeError, `unexpected ${(err as Error).name}: ${(err as Error).message}`);
      }
    }
  });
});
