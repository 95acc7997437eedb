import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { NetasciiDecoder, NetasciiEncoder, netasciiDecode, netasciiEncode } from '../../nodes/lib/tftp/netascii';
import { NetasciiSource, OctetSource } from '../../nodes/lib/tftp/source';
import type { StoreFile } from '../../nodes/lib/store/types';

/** A StoreFile over a buffer that returns short reads, as a real file may. */
function memFile(data: Buffer, maxRead = 7): StoreFile {
  return {
    path: 'mem',
    size: data.length,
    mtime: new Date(0),
    read: async (buf, off, len, pos) => data.copy(buf, off, pos, Math.min(data.length, pos + Math.min(len, maxRead))),
    close: async () => undefined,
  };
}

async function drain(source: { next(b: Buffer): Promise<number> }, chunk: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (;;) {
    const b = Buffer.alloc(chunk);
    const n = await source.next(b);
    parts.push(b.subarray(0, n));
    if (n < chunk) return Buffer.concat(parts);
  }
}

describe('netascii', () => {
  it('converts LF to CR LF and CR to CR NUL (RFC 764 via RFC 1350)', () => {
    assert.deepEqual(netasciiEncode(Buffer.from('a\nb\rc\r\n')), Buffer.from('a\r\nb\r\0c\r\0\r\n'));
    assert.deepEqual(netasciiDecode(Buffer.from('a\r\nb\r\0c\r\0\r\n')), Buffer.from('a\nb\rc\r\n'));
    assert.deepEqual(netasciiEncode(Buffer.alloc(0)), Buffer.alloc(0));
  });

  it('round-trips any bytes', () => {
    for (let i = 0; i < 50; i++) {
      const src = randomBytes(1 + i * 37);
      assert.deepEqual(netasciiDecode(netasciiEncode(src)), src);
    }
  });

  it('splits a pair across output buffers and finishes it in the next one', () => {
    const enc = new NetasciiEncoder();
    const src = Buffer.from('ab\n');
    const out1 = Buffer.alloc(3);
    const r1 = enc.encode(src, 0, 3, out1, 0, 3);
    assert.deepEqual(r1, { read: 3, written: 3 });
    assert.deepEqual(out1, Buffer.from('ab\r'));
    assert.ok(enc.hasPending);
    const out2 = Buffer.alloc(3);
    assert.deepEqual(enc.encode(src, 3, 3, out2, 0, 3), { read: 0, written: 1 });
    assert.equal(out2[0], 0x0a);
  });

  it('decodes across chunk boundaries, including a CR at the very end', () => {
    const wire = Buffer.from('x\r\ny\r\0z\r');
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new NetasciiDecoder();
      const out = Buffer.concat([d.decode(wire.subarray(0, cut)), d.decode(wire.subarray(cut)), d.end()]);
      assert.deepEqual(out, Buffer.from('x\ny\rz\r'), `cut at ${cut}`);
    }
  });

  it('NetasciiSource yields exactly the encoded file, whatever the chunk and read sizes', async () => {
    const text = Buffer.from('line one\nline two\r\n\n\rend'.repeat(50));
    const expected = netasciiEncode(text);
    for (const chunk of [1, 2, 3, 8, 512, 5000]) {
      for (const raw of [1, 5, 64, 4096]) {
        const got = await drain(new NetasciiSource(memFile(text, 11), raw), chunk);
        assert.deepEqual(got, expected, `chunk ${chunk} raw ${raw}`);
      }
    }
  });

  it('OctetSource loops over short reads and stops at the size known at open', async () => {
    const data = randomBytes(10_000);
    assert.deepEqual(await drain(new OctetSource(memFile(data, 13)), 4096), data);
    assert.deepEqual(await drain(new OctetSource(memFile(Buffer.alloc(0))), 512), Buffer.alloc(0));
  });
});
