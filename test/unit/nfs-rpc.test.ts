// ONC RPC v2 (RFC 5531): call decoding from hand-assembled bytes, the exact bytes of replies,
// refusals (RPC_MISMATCH, AUTH_ERROR, PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS,
// SYSTEM_ERR), and the TCP record decoder against split, fragmented, huge and random input.
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { describe, it } from 'node:test';
import { dispatch, replyBound, type RpcContext, type RpcProgram } from '../../nodes/lib/nfs/dispatch';
import * as R from '../../nodes/lib/nfs/rpc';
import { XdrError, XdrWriter } from '../../nodes/lib/nfs/xdr';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A GETATTR call as klibc/Linux send it: AUTH_SYS with machine name "klibc", uid/gid 0, one group. */
const KLIBC_CALL = hex(`
  12345678 00000000 00000002 000186a3 00000003 00000001
  00000001 00000020  0000005e 00000005 6b6c6962 63000000 00000000 00000000 00000001 00000000
  00000000 00000000
  00000004 01020304`);

describe('nfs rpc: calls', () => {
  it('decodes a hand-assembled AUTH_SYS call and leaves the arguments unread', () => {
    const p = R.parseCall(KLIBC_CALL);
    assert.equal(p.kind, 'call');
    if (p.kind !== 'call') return;
    const c = p.call;
    assert.deepEqual([c.xid, c.prog, c.vers, c.proc], [0x12345678, 100003, 3, 1]);
    assert.deepEqual(c.cred, { flavor: R.AUTH_SYS, stamp: 0x5e, machinename: 'klibc', uid: 0, gid: 0, gids: [0] });
    assert.deepEqual(c.args.opaqueVar(64), hex('01020304'));
    assert.equal(c.args.remaining, 0);
  });

  it('round-trips calls made by encodeCall (AUTH_NONE and AUTH_SYS)', () => {
    const cred: R.RpcCred = { flavor: R.AUTH_SYS, stamp: 1, machinename: 'm'.repeat(255), uid: 1000, gid: 100, gids: Array.from({ length: 16 }, (_, i) => i) };
    for (const c of [undefined, cred]) {
      const p = R.parseCall(R.encodeCall({ xid: 7, prog: 100005, vers: 3, proc: 1, cred: c, args: hex('0000000141000000') }));
      assert.equal(p.kind, 'call');
      if (p.kind !== 'call') continue;
      assert.deepEqual(p.call.cred, c ?? { flavor: R.AUTH_NONE });
      assert.equal(p.call.args.string(1024), 'A');
    }
  });

  it('denies rpcvers other than 2 with RPC_MISMATCH(2, 2), exact bytes', () => {
    const call = Buffer.from(KLIBC_CALL);
    call.writeUInt32BE(3, 8);
    const p = R.parseCall(call);
    assert.equal(p.kind, 'deny');
    if (p.kind !== 'deny') return;
    assert.deepEqual(R.messageOf(p.reply), hex('12345678 00000001 00000001 00000000 00000002 00000002'));
  });

  it('denies unknown and malformed credentials with AUTH_ERROR', () => {
    const withCred = (flavor: number, body: Buffer): Buffer =>
      new XdrWriter().uint32(9).uint32(0).uint32(2).uint32(100003).uint32(3).uint32(0).uint32(flavor).opaqueVar(body).uint32(0).uint32(0).finish();
    const authStat = (msg: Buffer): number | undefined => {
      const p = R.parseCall(msg);
      assert.equal(p.kind, 'deny');
      if (p.kind !== 'deny') return undefined;
      const r = R.parseReply(R.messageOf(p.reply));
      assert.equal(r.accepted, false);
      return r.accepted ? undefined : r.authStat;
    };
    assert.equal(authStat(withCred(R.AUTH_DH, Buffer.alloc(8))), R.AUTH_BADCRED);
    assert.equal(authStat(withCred(R.RPCSEC_GSS, Buffer.alloc(8))), R.AUTH_BADCRED);
    assert.equal(authStat(withCred(R.AUTH_SHORT, Buffer.alloc(8))), R.AUTH_REJECTEDCRED);
    // AUTH_SYS bodies that do not parse: truncated, machine name over 255, 17 groups.
    assert.equal(authStat(withCred(R.AUTH_SYS, Buffer.alloc(6))), R.AUTH_BADCRED);
    const longName = new XdrWriter().uint32(0).string('x'.repeat(256)).uint32(0).uint32(0).uint32(0).finish();
    assert.equal(authStat(withCred(R.AUTH_SYS, longName)), R.AUTH_BADCRED);
    const manyGids = new XdrWriter().uint32(0).string('h').uint32(0).uint32(0).uint32(17);
    for (let i = 0; i < 17; i++) manyGids.uint32(i);
    assert.equal(authStat(withCred(R.AUTH_SYS, manyGids.finish())), R.AUTH_BADCRED);
    // An opaque_auth body over 400 bytes.
    assert.equal(authStat(withCred(R.AUTH_NONE, Buffer.alloc(404))), R.AUTH_BADCRED);
    // A verifier that is not an empty AUTH_NONE.
    const badVerf = new XdrWriter().uint32(9).uint32(0).uint32(2).uint32(100003).uint32(3).uint32(0).uint32(0).uint32(0).uint32(R.AUTH_SYS).opaqueVar(Buffer.alloc(4)).finish();
    assert.equal(authStat(badVerf), R.AUTH_BADVERF);
  });

  it('drops what is not an answerable call', () => {
    assert.equal(R.parseCall(Buffer.alloc(0)).kind, 'drop');
    assert.equal(R.parseCall(hex('00000001 00000000')).kind, 'drop'); // header cut short
    assert.equal(R.parseCall(hex('00000001 00000001 00000000')).kind, 'drop'); // a REPLY
    assert.equal(R.parseCall(KLIBC_CALL.subarray(0, 20)).kind, 'drop');
  });

  it('never throws on random or truncated input (bounded fuzz)', () => {
    for (let i = 0; i < 5000; i++) {
      let msg: Buffer;
      if (i % 3 === 0) msg = randomBytes(randomInt(0, 200));
      else {
        msg = Buffer.from(KLIBC_CALL.subarray(0, randomInt(0, KLIBC_CALL.length + 1)));
        for (let k = 0; k < 3; k++) if (msg.length) msg[randomInt(0, msg.length)] = randomInt(0, 256);
      }
      const p = R.parseCall(msg);
      assert.ok(['call', 'deny', 'drop'].includes(p.kind));
      if (p.kind === 'deny') assert.ok(p.reply.length <= 32);
    }
  });
});

describe('nfs rpc: replies', () => {
  it('writes accepted replies with an AUTH_NONE verifier of length 0 and mark space in front', () => {
    const ok = R.acceptedWriter(0xabcdef01, R.SUCCESS).uint32(0).finish();
    assert.deepEqual(R.messageOf(ok), hex('abcdef01 00000001 00000000 00000000 00000000 00000000 00000000'));
    assert.equal(ok.length, R.ACCEPTED_HEADER_SIZE + 4);
    R.setRecordMark(ok);
    assert.equal(ok.readUInt32BE(0), (0x80000000 | (ok.length - 4)) >>> 0);
    assert.deepEqual(R.messageOf(R.progMismatchReply(5, 3, 3)), hex('00000005 00000001 00000000 00000000 00000000 00000002 00000003 00000003'));
    assert.deepEqual(R.messageOf(R.authErrorReply(5, R.AUTH_BADCRED)), hex('00000005 00000001 00000001 00000001 00000001'));
    for (const stat of [R.PROG_UNAVAIL, R.PROC_UNAVAIL, R.GARBAGE_ARGS, R.SYSTEM_ERR]) {
      const r = R.parseReply(R.messageOf(R.acceptedReply(5, stat)));
      assert.ok(r.accepted && r.stat === stat && r.body.remaining === 0);
    }
  });
});

describe('nfs rpc: dispatch', () => {
  const ctx: RpcContext = { transport: 'tcp', address: '127.0.0.1', port: 1, maxReply: 1 << 20 };
  const prog: RpcProgram = {
    prog: 200000,
    name: 'test',
    low: 2,
    high: 4,
    procs: 3,
    replyBound: () => 100,
    handle(call) {
      if (call.proc === 1) call.args.uint32(); // needs an argument
      if (call.proc === 2) throw new Error('boom');
      return R.acceptedReply(call.xid, R.SUCCESS);
    },
  };
  const programs = new Map([[prog.prog, prog]]);
  const run = async (p: number, vers: number, proc: number, args?: Buffer): Promise<R.RpcReply> => {
    const parsed = R.parseCall(R.encodeCall({ xid: 1, prog: p, vers, proc, args }));
    assert.equal(parsed.kind, 'call');
    if (parsed.kind !== 'call') throw new Error('unreachable');
    const errors: Error[] = [];
    const out = await dispatch(programs, parsed.call, ctx, (e) => errors.push(e));
    assert.equal(errors.length, proc === 2 && p === prog.prog && vers >= 2 && vers <= 4 ? 1 : 0);
    return R.parseReply(R.messageOf(out!));
  };

  it('answers PROG_UNAVAIL, PROG_MISMATCH(low, high), PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR', async () => {
    const stat = (r: R.RpcReply): number => (r.accepted ? r.stat : -1);
    assert.equal(stat(await run(123, 2, 0)), R.PROG_UNAVAIL);
    const mm = await run(prog.prog, 5, 0);
    assert.equal(stat(mm), R.PROG_MISMATCH);
    assert.deepEqual(mm.mismatch, { low: 2, high: 4 });
    assert.equal(stat(await run(prog.prog, 1, 0)), R.PROG_MISMATCH);
    assert.equal(stat(await run(prog.prog, 3, 3)), R.PROC_UNAVAIL);
    assert.equal(stat(await run(prog.prog, 3, 0xffffffff)), R.PROC_UNAVAIL);
    assert.equal(stat(await run(prog.prog, 3, 1)), R.GARBAGE_ARGS);
    assert.equal(stat(await run(prog.prog, 3, 1, hex('00000001'))), R.SUCCESS);
    assert.equal(stat(await run(prog.prog, 3, 2)), R.SYSTEM_ERR);
  });

  it('bounds refused calls small and asks the program otherwise', () => {
    const call = (p: number, proc: number): R.RpcCall => ({ xid: 1, prog: p, vers: 3, proc, cred: { flavor: 0 }, args: undefined as never });
    assert.equal(replyBound(programs, call(999, 0), ctx), R.ACCEPTED_HEADER_SIZE + 8);
    assert.equal(replyBound(programs, call(prog.prog, 0), ctx), 100);
  });
});

describe('nfs rpc: record decoder', () => {
  const mark = (len: number, last: boolean): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(((last ? 0x80000000 : 0) | len) >>> 0);
    return b;
  };

  it('returns one-fragment records inside a chunk as views, without copying', () => {
    const payload = randomBytes(100);
    const chunk = Buffer.concat([mark(100, true), payload, mark(3, true), hex('010203')]);
    const d = new R.RecordDecoder(1024);
    d.push(chunk);
    const a = d.next()!;
    assert.deepEqual(a, payload);
    assert.equal(a.buffer, chunk.buffer); // a view of the chunk
    assert.deepEqual(d.next(), hex('010203'));
    assert.equal(d.next(), undefined);
  });

  it('reassembles fragments and records split at every byte', () => {
    const records = [randomBytes(10), randomBytes(0), randomBytes(1000), randomBytes(7)];
    const wire: Buffer[] = [];
    for (const r of records) {
      // Split each record into up to 4 fragments.
      const cuts = [0, Math.floor(r.length / 3), Math.floor((2 * r.length) / 3), r.length];
      for (let i = 0; i < 3; i++) wire.push(mark(cuts[i + 1]! - cuts[i]!, i === 2), r.subarray(cuts[i], cuts[i + 1]));
    }
    const all = Buffer.concat(wire);
    for (const step of [1, 2, 3, 5, 64, all.length]) {
      const d = new R.RecordDecoder(4096);
      const got: Buffer[] = [];
      for (let i = 0; i < all.length; i += step) {
        d.push(all.subarray(i, i + step));
        for (let rec; (rec = d.next()); ) got.push(Buffer.from(rec));
      }
      assert.deepEqual(got, records, `split every ${step} bytes`);
      assert.equal(d.buffered, 0);
    }
  });

  it('refuses a mark over the maximum at once, without allocating (marks up to 2^31)', () => {
    for (const m of [0xffffffff, 0x7fffffff, 0x80000000 | 1025, 1025]) {
      const d = new R.RecordDecoder(1024);
      const b = Buffer.alloc(4);
      b.writeUInt32BE(m >>> 0);
      d.push(b);
      const before = process.memoryUsage().arrayBuffers;
      assert.throws(() => d.next(), R.RecordError);
      assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20);
    }
    // Fragments that add up to more than the maximum.
    const d = new R.RecordDecoder(1024);
    d.push(Buffer.concat([mark(600, false), Buffer.alloc(600), mark(600, true)]));
    assert.throws(() => d.next(), R.RecordError);
  });

  it('refuses records of too many fragments', () => {
    const d = new R.RecordDecoder(1 << 20);
    const parts: Buffer[] = [];
    for (let i = 0; i <= R.MAX_FRAGMENTS; i++) parts.push(mark(1, false), hex('00'));
    d.push(Buffer.concat(parts));
    assert.throws(() => d.next(), R.RecordError);
  });

  it('holds at most one partial record (bounded by the maximum) while it waits', () => {
    const d = new R.RecordDecoder(64 * 1024);
    d.push(mark(60 * 1024, true));
    for (let i = 0; i < 59; i++) {
      d.push(randomBytes(1024));
      assert.equal(d.next(), undefined);
    }
    assert.ok(d.buffered <= 64 * 1024);
    d.push(randomBytes(1024));
    assert.equal(d.next()!.length, 60 * 1024);
  });

  it('random streams: every record returned intact or a RecordError, never anything else', () => {
    for (let round = 0; round < 300; round++) {
      const d = new R.RecordDecoder(2048);
      const sent: Buffer[] = [];
      const wire: Buffer[] = [];
      const n = randomInt(1, 8);
      for (let i = 0; i < n; i++) {
        const rec = randomBytes(randomInt(0, 3000));
        sent.push(rec);
        wire.push(mark(rec.length, true), rec);
      }
      if (round % 5 === 0) wire.push(randomBytes(randomInt(1, 50))); // trailing garbage
      const all = Buffer.concat(wire);
      const got: Buffer[] = [];
      let failed = false;
      try {
        for (let i = 0; i < all.length; ) {
          const step = randomInt(1, 700);
          d.push(all.subarray(i, i + step));
          i += step;
          for (let rec; (rec = d.next()); ) got.push(Buffer.from(rec));
        }
      } catch (err) {
        assert.ok(err instanceof R.RecordError, String(err));
        failed = true;
      }
      const ok = sent.findIndex((r) => r.length > 2048);
      const expectCount = ok < 0 ? sent.length : ok;
      if (ok >= 0) assert.ok(failed, 'an oversize record must fail');
      assert.deepEqual(got.slice(0, expectCount), sent.slice(0, expectCount));
    }
  });

  it('XdrError is what arguments throw (GARBAGE_ARGS in dispatch)', () => {
    const p = R.parseCall(R.encodeCall({ xid: 1, prog: 1, vers: 1, proc: 1 }));
    assert.equal(p.kind, 'call');
    if (p.kind === 'call') assert.throws(() => p.call.args.uint32(), XdrError);
  });
});
