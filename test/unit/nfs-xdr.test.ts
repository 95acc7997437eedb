// XDR (RFC 4506) reader and writer: byte layout, round trips, bounds on hostile lengths.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { opaqueSize, pad4, XdrError, XdrReader, XdrWriter } from '../../nodes/lib/nfs/xdr';

describe('nfs xdr', () => {
  it('writes the RFC 4506 layout: big-endian words, opaque length + data + zero padding', () => {
    const w = new XdrWriter(4); // starts tiny: must grow
    w.uint32(0xdeadbeef).int32(-2).bool(true).bool(false).uint64(0x0102030405060708n).opaqueVar(Buffer.from('abcde')).string('hi').opaqueFixed(Buffer.from([9]));
    assert.equal(
      w.finish().toString('hex'),
      'deadbeef' + 'fffffffe' + '00000001' + '00000000' + '0102030405060708' + '00000005' + '6162636465000000' + '00000002' + '68690000' + '09000000',
    );
  });

  it('round-trips every type, including uint64 above 4 GiB and 2^53', () => {
    const big = 5n * 1024n * 1024n * 1024n + 7n;
    const huge = (1n << 64n) - 1n;
    const w = new XdrWriter();
    w.uint32(0).uint32(0xffffffff).int32(-0x80000000).uint64(big).uint64(huge).uint64(5 * 2 ** 30 + 7).bool(true);
    w.opaqueVar(Buffer.alloc(0)).string('ünïcode').opaqueFixed(Buffer.from('xyz'));
    const r = new XdrReader(w.finish());
    assert.equal(r.uint32(), 0);
    assert.equal(r.uint32(), 0xffffffff);
    assert.equal(r.int32(), -0x80000000);
    assert.equal(r.uint64(), big);
    assert.equal(r.uint64(), huge);
    assert.equal(r.uint64Number(), 5 * 2 ** 30 + 7);
    assert.equal(r.bool(), true);
    assert.equal(r.opaqueVar(10).length, 0);
    assert.equal(r.string(64), 'ünïcode');
    assert.deepEqual(r.opaqueFixed(3), Buffer.from('xyz'));
    assert.equal(r.remaining, 0);
  });

  it('clamps uint64 values beyond 2^53 when read as numbers', () => {
    const r = new XdrReader(new XdrWriter().uint64((1n << 63n) + 5n).finish());
    assert.equal(r.uint64Number(), Number.MAX_SAFE_INTEGER);
  });

  it('throws XdrError TRUNCATED instead of reading past the end', () => {
    for (const [bytes, read] of [
      [3, (r: XdrReader) => r.uint32()],
      [7, (r: XdrReader) => r.uint64()],
      [3, (r: XdrReader) => r.opaqueFixed(1)], // the padding is missing
      [8, (r: XdrReader) => r.skip(9)],
    ] as const) {
      assert.throws(
        () => read(new XdrReader(Buffer.alloc(bytes))),
        (e: unknown) => e instanceof XdrError && e.code === 'TRUNCATED',
      );
    }
    // A declared length larger than what is left: refused before anything is allocated.
    const r = new XdrReader(Buffer.from('ffffffff00000000', 'hex'));
    assert.throws(() => r.opaqueVar(0xffffffff), (e: unknown) => e instanceof XdrError && e.code === 'TRUNCATED');
  });

  it('throws XdrError TOO_LONG for lengths and counts over their maximum', () => {
    const msg = new XdrWriter().opaqueVar(Buffer.alloc(300)).finish();
    assert.throws(() => new XdrReader(msg).opaqueVar(255), (e: unknown) => e instanceof XdrError && e.code === 'TOO_LONG');
    assert.throws(() => new XdrReader(msg).string(255), (e: unknown) => e instanceof XdrError && e.code === 'TOO_LONG');
    assert.equal(new XdrReader(msg).opaqueVar(300).length, 300);
    const count = new XdrWriter().uint32(17).finish();
    assert.throws(() => new XdrReader(count).count(16), (e: unknown) => e instanceof XdrError && e.code === 'TOO_LONG');
    // 16 items claimed, no bytes for them.
    assert.throws(() => new XdrReader(new XdrWriter().uint32(16).finish()).count(16), (e: unknown) => e instanceof XdrError && e.code === 'TRUNCATED');
  });

  it('refuses a bool that is neither 0 nor 1', () => {
    assert.throws(() => new XdrReader(new XdrWriter().uint32(2).finish()).bool(), (e: unknown) => e instanceof XdrError && e.code === 'BAD_VALUE');
  });

  it('reads only inside its bounds, and clones do not advance the original', () => {
    const buf = new XdrWriter().uint32(1).uint32(2).uint32(3).finish();
    const r = new XdrReader(buf, 4, 8);
    const c = r.clone();
    assert.equal(c.uint32(), 2);
    assert.equal(r.remaining, 4);
    assert.equal(r.uint32(), 2);
    assert.throws(() => r.uint32(), XdrError);
    assert.throws(() => new XdrReader(buf, 8, 20), RangeError);
  });

  it('a pre-sized writer fills the caller buffer and refuses to overflow it', () => {
    const into = Buffer.alloc(12);
    const w = new XdrWriter(0, into, 4);
    w.uint32(7).uint32(8);
    assert.equal(w.finish().length, 12);
    assert.equal(into.readUInt32BE(4), 7);
    assert.throws(() => w.uint32(9), RangeError);
  });

  it('pads to 4 and sizes opaques', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5].map(pad4), [0, 3, 2, 1, 0, 3]);
    assert.equal(opaqueSize(5), 12);
    assert.equal(opaqueSize(0), 4);
  });

  it('random opaques round-trip with their padding zeroed', () => {
    for (let i = 0; i < 200; i++) {
      const data = randomBytes(i % 37);
      const out = new XdrWriter(1).opaqueVar(data).finish();
      assert.equal(out.length, opaqueSize(data.length));
      assert.ok(out.subarray(4 + data.length).every((b) => b === 0));
      assert.deepEqual(new XdrReader(out).opaqueVar(64), data);
    }
  });
});
