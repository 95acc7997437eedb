import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import * as P from '../../nodes/lib/nbd/protocol';

describe('nbd protocol codec', () => {
  it('greets with the spec bytes: NBDMAGIC, IHAVEOPT, 16-bit flags', () => {
    const g = P.encodeGreeting(P.NBD_FLAG_FIXED_NEWSTYLE | P.NBD_FLAG_NO_ZEROES);
    assert.equal(g.toString('hex'), Buffer.from('NBDMAGICIHAVEOPT').toString('hex') + '0003');
    assert.deepEqual(P.decodeGreeting(g), { flags: 3 });
    assert.throws(() => P.decodeGreeting(g.subarray(0, 17)), P.NbdProtocolError);
    const oldstyle = Buffer.from(g);
    oldstyle.write('\x00\x00\x42\x02\x81\x86\x12\x53', 8, 'latin1');
    assert.throws(() => P.decodeGreeting(oldstyle), /newstyle/);
  });

  it('encodes the magics of the spec', () => {
    assert.equal(P.OPTION_REPLY_MAGIC, 0x3e889045565a9n);
    const req = P.encodeRequest({ type: P.NBD_CMD_READ, flags: 0, handle: Buffer.alloc(8), offset: 0, length: 0 });
    assert.equal(req.subarray(0, 4).toString('hex'), '25609513');
    assert.equal(P.encodeSimpleReply(0, Buffer.alloc(8)).subarray(0, 4).toString('hex'), '67446698');
    assert.equal(P.NBD_REP_ERR_UNSUP, 0x80000001);
    assert.equal(P.NBD_REP_ERR_UNKNOWN, 0x80000006);
    assert.ok(P.isReplyError(P.NBD_REP_ERR_INVALID) && !P.isReplyError(P.NBD_REP_ACK));
  });

  it('round-trips options, option replies and info requests', () => {
    const data = P.encodeInfoRequest({ name: 'archiso', requests: [P.NBD_INFO_BLOCK_SIZE, P.NBD_INFO_NAME] });
    assert.equal(data.toString('hex'), '00000007' + Buffer.from('archiso').toString('hex') + '0002' + '0003' + '0001');
    const opt = P.encodeOption(P.NBD_OPT_GO, data);
    assert.deepEqual(P.decodeOptionHeader(opt), { option: P.NBD_OPT_GO, length: data.length });
    assert.deepEqual(P.decodeInfoRequest(opt.subarray(16)), { name: 'archiso', requests: [3, 1] });
    const rep = P.encodeOptionReply(P.NBD_OPT_LIST, P.NBD_REP_SERVER, P.encodeServerReplyData('archiso', 'Arch ISO'));
    const h = P.decodeOptionReplyHeader(rep);
    assert.deepEqual(h, { option: P.NBD_OPT_LIST, type: P.NBD_REP_SERVER, length: 4 + 7 + 8 });
    assert.deepEqual(P.decodeServerReplyData(rep.subarray(20)), { name: 'archiso', description: 'Arch ISO' });
  });

  it('round-trips info replies and the EXPORT_NAME answer', () => {
    const size = 2 ** 40 + 7;
    assert.deepEqual(P.decodeInfoReply(P.encodeInfoExport(size, 0x107)), { type: P.NBD_INFO_EXPORT, size, flags: 0x107 });
    assert.deepEqual(P.decodeInfoReply(P.encodeInfoBlockSize({ minimum: 1, preferred: 4096, maximum: 1 << 25 })), {
      type: P.NBD_INFO_BLOCK_SIZE,
      minimum: 1,
      preferred: 4096,
      maximum: 1 << 25,
    });
    assert.deepEqual(P.decodeInfoReply(P.encodeInfoName('é')), { type: P.NBD_INFO_NAME, name: 'é' });
    assert.equal(P.encodeExportNameReply(size, 3, true).length, 10);
    const withZeroes = P.encodeExportNameReply(size, 3, false);
    assert.equal(withZeroes.length, 134);
    assert.equal(withZeroes.readBigUInt64BE(0), BigInt(size));
    assert.ok(withZeroes.subarray(10).every((x) => x === 0));
  });

  it('round-trips requests and simple replies', () => {
    const handle = Buffer.from('0123456789abcdef', 'hex');
    const r = { type: P.NBD_CMD_READ, flags: P.NBD_CMD_FLAG_FUA, handle, offset: 2 ** 33 + 512, length: 65536 };
    const b = P.encodeRequest(r);
    assert.equal(b.length, P.REQUEST_LENGTH);
    assert.deepEqual(P.decodeRequest(b), r);
    const rep = P.encodeSimpleReply(P.NBD_EINVAL, handle);
    assert.deepEqual(P.decodeSimpleReply(rep), { error: 22, handle });
    assert.equal(P.encodeSimpleReply(0, handle, 100).length, 116);
  });

  it('reports an offset beyond 2^53 as Infinity (answered EINVAL, not a dropped link)', () => {
    const b = P.encodeRequest({ type: 0, flags: 0, handle: Buffer.alloc(8), offset: 0, length: 1 });
    b.writeBigUInt64BE(0xffffffffffffffffn, 16);
    assert.equal(P.decodeRequest(b).offset, Infinity);
  });

  it('refuses malformed input with NbdProtocolError', () => {
    assert.throws(() => P.decodeOptionHeader(Buffer.alloc(16)), /IHAVEOPT/);
    assert.throws(() => P.decodeRequest(Buffer.alloc(28)), /magic/);
    assert.throws(() => P.decodeRequest(Buffer.alloc(27)), /short/);
    // Name length beyond the data; count not matching the length; trailing bytes.
    const bad1 = Buffer.from('000000ff' + '0000', 'hex');
    assert.throws(() => P.decodeInfoRequest(bad1), /exceeds/);
    const ok = P.encodeInfoRequest({ name: 'a', requests: [3] });
    assert.throws(() => P.decodeInfoRequest(ok.subarray(0, ok.length - 1)), /count/);
    assert.throws(() => P.decodeInfoRequest(Buffer.concat([ok, Buffer.alloc(1)])), /count/);
    assert.throws(() => P.decodeName(Buffer.from([0xff, 0xfe])), /UTF-8/);
    assert.throws(() => P.decodeName(Buffer.from('a\0b')), /UTF-8/);
    assert.throws(() => P.decodeInfoReply(Buffer.from('0000' + '00', 'hex')), /12 bytes/);
    const huge = P.encodeInfoExport(0, 0);
    huge.writeBigUInt64BE(0xffffffffffffffffn, 2);
    assert.throws(() => P.decodeInfoReply(huge), /too large/);
  });

  it('fuzz: decoders given random bytes either decode or throw NbdProtocolError', () => {
    const decoders = [
      P.decodeGreeting,
      P.decodeOptionHeader,
      P.decodeOptionReplyHeader,
      P.decodeInfoRequest,
      P.decodeServerReplyData,
      P.decodeInfoReply,
      P.decodeRequest,
      P.decodeSimpleReply,
      P.decodeName,
    ];
    for (let i = 0; i < 3000; i++) {
      const len = i % 40;
      const b = randomBytes(len);
      // Bias some inputs towards valid prefixes so the deeper checks run too.
      if (i % 3 === 0 && len >= 16) P.encodeOption(P.NBD_OPT_GO).copy(b, 0, 0, 8);
      if (i % 3 === 1 && len >= 4) b.writeUInt32BE(len % 8, 0);
      for (const d of decoders) {
        try {
          d(b);
        } catch (err) {
          assert.ok(err instanceof P.NbdProtocolError, `${d.name}: ${(err as Error).stack}`);
        }
      }
    }
  });
});
