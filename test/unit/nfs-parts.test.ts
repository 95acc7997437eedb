// The NFS library's parts on their own: handles and the id → path index, read coverage and
// progress events, the reply budget, the reply buffer pool, the open-file cache, attributes
// (sizes over 4 GiB), export path mapping.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplyAccount, ReplyBudget } from '../../nodes/lib/reply-budget';
import { MAX_PARTIAL, ReadCoverage, ReadTracker, type ReadProgress } from '../../nodes/lib/nfs/coverage';
import { FATTR_SIZE, writeFattr } from '../../nodes/lib/nfs/fattr';
import { FileCache } from '../../nodes/lib/nfs/file-cache';
import { decodeHandle, encodeHandle, FH_SIZE, fileIdOf, HandleIndex, parentOf, ROOT_FILEID, storeGeneration } from '../../nodes/lib/nfs/handles';
import { MountProgram, normalizeExportPath } from '../../nodes/lib/nfs/mount';
import { checkName } from '../../nodes/lib/nfs/nfs3';
import { NFS3ERR_BADHANDLE, NFS3ERR_INVAL, NFS3ERR_NAMETOOLONG, NFS3ERR_NOENT, NFS3ERR_STALE } from '../../nodes/lib/nfs/nfs3-const';
import { CLASSES, ReplyPool } from '../../nodes/lib/nfs/reply-pool';
import { XdrReader, XdrWriter } from '../../nodes/lib/nfs/xdr';
import { memStore } from './nfs-memstore';

describe('nfs handles', () => {
  const store = memStore({ 'a/b/c.txt': 3, 'a/d.txt': 1, 'e.txt': 2 });

  it('are 16 bytes: magic, store generation, fileid; the root has fileid 1', () => {
    const idx = new HandleIndex(store);
    const fh = idx.handleOf('');
    assert.equal(fh.length, FH_SIZE);
    assert.deepEqual(fh.subarray(4, 8), storeGeneration(store));
    assert.equal(fh.readBigUInt64BE(8), BigInt(ROOT_FILEID));
    assert.equal(fh.readUInt32BE(0), 0x50584e03);
    assert.notEqual(fileIdOf('a'), fileIdOf('b'));
    assert.ok(fileIdOf('a') > 1 && Number.isSafeInteger(fileIdOf('a')));
    assert.equal(fileIdOf('a/b'), fileIdOf('a/b'));
    assert.notEqual(fileIdOf('ab'), fileIdOf('ba'));
    assert.equal(parentOf('a/b/c'), 'a/b');
    assert.equal(parentOf('a'), '');
    assert.equal(parentOf(''), '');
  });

  it('are the same for the same store in another server instance, and differ for another store', () => {
    const a = new HandleIndex(store).handleOf('a/b/c.txt');
    assert.deepEqual(new HandleIndex(memStore({ 'a/b/c.txt': 3 })).handleOf('a/b/c.txt'), a);
    const other = new HandleIndex(memStore({ 'a/b/c.txt': 3 }, '/elsewhere')).handleOf('a/b/c.txt');
    assert.notDeepEqual(other, a);
    assert.deepEqual(other.subarray(8), a.subarray(8)); // same path, same fileid
  });

  it('decode: wrong length or magic → BADHANDLE, other generation → STALE', () => {
    const gen = storeGeneration(store);
    const fh = encodeHandle(gen, 42 + 2 ** 40);
    assert.deepEqual(decodeHandle(fh, gen), { ok: true, fileid: 42 + 2 ** 40 });
    const high = Buffer.from(fh);
    high.writeUInt32BE(0xffffffff, 8); // more than 53 bits: no id of ours
    assert.deepEqual(decodeHandle(high, gen), { ok: false, status: NFS3ERR_STALE });
    assert.deepEqual(decodeHandle(fh.subarray(0, 15), gen), { ok: false, status: NFS3ERR_BADHANDLE });
    assert.deepEqual(decodeHandle(Buffer.concat([fh, Buffer.alloc(1)]), gen), { ok: false, status: NFS3ERR_BADHANDLE });
    assert.deepEqual(decodeHandle(Buffer.alloc(0), gen), { ok: false, status: NFS3ERR_BADHANDLE });
    const bad = Buffer.from(fh);
    bad[0] = 0;
    assert.deepEqual(decodeHandle(bad, gen), { ok: false, status: NFS3ERR_BADHANDLE });
    assert.deepEqual(decodeHandle(encodeHandle(storeGeneration({ kind: 'iso', source: '/mem' }), 42), gen), { ok: false, status: NFS3ERR_STALE });
  });

  it('an unknown fileid is found by one walk of the store; a still unknown one is STALE without another walk', async () => {
    const s = memStore({ 'a/b/c.txt': 3, 'a/d.txt': 1, 'e.txt': 2 });
    const idx = new HandleIndex(s, { minWalkIntervalMs: 60_000 });
    const fh = new HandleIndex(s).handleOf('a/b/c.txt');
    const [r1, r2] = await Promise.all([idx.resolve(fh), idx.resolve(fh)]); // one walk for both
    assert.deepEqual(r1, { ok: true, fileid: fileIdOf('a/b/c.txt'), path: 'a/b/c.txt' });
    assert.deepEqual(r2, r1);
    assert.equal(idx.walks, 1);
    const ghost = encodeHandle(idx.generation, fileIdOf('nope'));
    assert.deepEqual(await idx.resolve(ghost), { ok: false, status: NFS3ERR_STALE });
    assert.equal(idx.walks, 1); // too soon for another walk
    assert.deepEqual(await idx.resolve(idx.handleOf('')), { ok: true, fileid: 1, path: '' });
  });

  it('walks are bounded by depth and entries; the index by its size', async () => {
    const files: Record<string, number> = {};
    let deep = 'd';
    for (let i = 0; i < 10; i++) deep += `/d${i}`;
    files[`${deep}/f`] = 1;
    for (let i = 0; i < 100; i++) files[`wide/f${i}`] = 1;
    const s = memStore(files);
    const shallow = new HandleIndex(s, { maxDepth: 3, minWalkIntervalMs: 0 });
    assert.equal((await shallow.resolve(new HandleIndex(s).handleOf(`${deep}/f`))).ok, false);
    assert.equal((await shallow.resolve(new HandleIndex(s).handleOf('d/d0'))).ok, true);
    const small = new HandleIndex(s, { maxEntries: 20, minWalkIntervalMs: 0 });
    await small.walk();
    assert.ok(small.size <= 20, `${small.size} entries`);
    for (let i = 0; i < 100; i++) small.remember(`x/${i}`);
    assert.equal(small.size, 20);
    assert.equal(small.pathOf(fileIdOf('x/99')), 'x/99');
    assert.equal(small.pathOf(fileIdOf('x/0')), undefined);
  });
});

describe('nfs names and exports', () => {
  it('checkName refuses what no store entry can be called', () => {
    assert.deepEqual(checkName(Buffer.from('ok.txt')), { ok: true, name: 'ok.txt' });
    assert.deepEqual(checkName(Buffer.alloc(0)), { ok: false, status: NFS3ERR_NOENT });
    assert.deepEqual(checkName(Buffer.from('a/b')), { ok: false, status: NFS3ERR_INVAL });
    assert.deepEqual(checkName(Buffer.from('a\0b')), { ok: false, status: NFS3ERR_INVAL });
    assert.deepEqual(checkName(Buffer.alloc(256, 0x61)), { ok: false, status: NFS3ERR_NAMETOOLONG });
    assert.equal(checkName(Buffer.alloc(255, 0x61)).ok, true);
    assert.deepEqual(checkName(Buffer.from([0xc3])), { ok: false, status: NFS3ERR_NOENT });
    assert.deepEqual(checkName(Buffer.from('é', 'utf8')), { ok: true, name: 'é' });
  });

  it('export paths: normalised, longest match first, everything maps to the store root', () => {
    assert.equal(normalizeExportPath('/run//archiso/bootmnt/'), '/run/archiso/bootmnt');
    assert.equal(normalizeExportPath(''), '/');
    const m = new MountProgram({ store: memStore({}), handles: new HandleIndex(memStore({})) });
    assert.deepEqual(m.exports, ['/run/archiso/bootmnt', '/']);
    assert.deepEqual(m.storePathOf('/run/archiso/bootmnt'), { ok: true, path: '' });
    assert.deepEqual(m.storePathOf('/run/archiso/bootmnt/arch/x86_64'), { ok: true, path: 'arch/x86_64' });
    assert.deepEqual(m.storePathOf('/arch'), { ok: true, path: 'arch' });
    assert.deepEqual(m.storePathOf('/run/archiso/bootmntX'), { ok: true, path: 'run/archiso/bootmntX' });
    const only = new MountProgram({ store: memStore({}), handles: new HandleIndex(memStore({})), exportPaths: ['/srv/boot/'] });
    assert.deepEqual(only.exports, ['/srv/boot']);
    assert.equal(only.storePathOf('/srv').ok, false);
    assert.equal(only.storePathOf('/srv/bootx').ok, false);
    assert.deepEqual(only.storePathOf('/srv/boot/a'), { ok: true, path: 'a' });
    assert.equal(only.storePathOf('/srv/boot/../../etc').ok, false);
  });
});

describe('nfs attributes', () => {
  it('fattr3: 84 bytes, sizes over 4 GiB exact, read-only modes, times in seconds + nanoseconds', () => {
    const size = 5 * 2 ** 30 + 12345;
    const w = new XdrWriter();
    writeFattr(w, { fileid: 0x1edcba98765432, isDirectory: false, size, mtime: new Date(1_700_000_000_123) }, 7);
    const out = w.finish();
    assert.equal(out.length, FATTR_SIZE);
    const r = new XdrReader(out);
    assert.deepEqual([r.uint32(), r.uint32(), r.uint32(), r.uint32(), r.uint32()], [1, 0o444, 1, 0, 0]);
    assert.equal(r.uint64(), BigInt(size));
    assert.equal(r.uint64(), BigInt(size));
    r.skip(8);
    assert.equal(r.uint64(), 7n);
    assert.equal(r.uint64(), 0x1edcba98765432n);
    for (let i = 0; i < 3; i++) assert.deepEqual([r.uint32(), r.uint32()], [1_700_000_000, 123_000_000]);
    const d = new XdrWriter();
    writeFattr(d, { fileid: 1, isDirectory: true, size: 0, mtime: new Date(-5) }, 7);
    const dr = new XdrReader(d.finish());
    assert.deepEqual([dr.uint32(), dr.uint32(), dr.uint32()], [2, 0o555, 2]);
  });
});

describe('nfs read coverage', () => {
  it('counts distinct bytes, in any order, with re-reads counted once', () => {
    const c = new ReadCoverage(10 * 4096 + 100);
    c.add(4096, 8192);
    c.add(4096, 4096);
    assert.equal(c.bytes, 8192);
    c.add(0, 4096);
    c.add(12288, 100_000);
    assert.equal(c.bytes, c.size);
    assert.equal(c.done, true);
  });

  it('counts unaligned sequential reads exactly (libnfs-sized buffers)', () => {
    const size = 1_000_003;
    const c = new ReadCoverage(size);
    for (let off = 0; off < size; off += 1000) {
      c.add(off, 1000);
      assert.equal(c.bytes, Math.min(off + 1000, size));
    }
    assert.equal(c.done, true);
  });

  it('never claims more than was read; done only when every chunk is whole', () => {
    const c = new ReadCoverage(100 * 4096);
    for (let i = 0; i < 100; i++) c.add(i * 4096 + 10, 100); // a sliver of each chunk
    assert.ok(c.bytes <= 100 * 100, `${c.bytes}`);
    assert.equal(c.done, false);
    for (let i = 0; i < 100; i++) c.add(i * 4096, 4096);
    assert.equal(c.done, true);
  });

  it('stays small for huge files: the chunk grows, the bitmap is at most 32 KiB', () => {
    const c = new ReadCoverage(64 * 2 ** 30);
    assert.ok(c.chunks <= 1 << 18);
    c.add(0, 2 ** 30);
    assert.equal(c.bytes, 2 ** 30);
    assert.ok(MAX_PARTIAL <= 64);
  });

  it('a 0-byte file is done at once', () => {
    const c = new ReadCoverage(0);
    assert.equal(c.done, true);
    assert.equal(c.bytes, 0);
  });

  it('tracker: throttled per client+file, a trailing event, one final done, reset on a new mount', async () => {
    const events: ReadProgress[] = [];
    const t = new ReadTracker(100, (p) => events.push(p), 4);
    t.record('10.0.0.1', 'f', 0, 4096, 40960);
    t.record('10.0.0.1', 'f', 4096, 4096, 40960); // inside the interval: trailing event later
    t.record('10.0.0.2', 'f', 0, 4096, 40960); // another client: its own throttle
    assert.deepEqual(events.map((e) => [e.address, e.bytes]), [['10.0.0.1', 4096], ['10.0.0.2', 4096]]);
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(events.map((e) => e.bytes), [4096, 4096, 8192]);
    t.record('10.0.0.1', 'f', 8192, 40960, 40960);
    const last = events[events.length - 1]!;
    assert.deepEqual(last, { address: '10.0.0.1', path: 'f', bytes: 40960, size: 40960, share: 1, done: true });
    t.record('10.0.0.1', 'f', 0, 40960, 40960); // re-reads after done: nothing more
    assert.equal(events.filter((e) => e.done).length, 1);
    t.resetClient('10.0.0.1');
    t.record('10.0.0.1', 'f', 0, 40960, 40960);
    assert.equal(events.filter((e) => e.done).length, 2);
    // Bounded: at most 4 pairs kept.
    for (let i = 0; i < 10; i++) t.record('10.0.0.3', `g${i}`, 0, 1, 100);
    assert.ok(t.tracked <= 4);
    t.close();
  });
});

describe('nfs reply budget (ReplyAccount over a ReplyBudget)', () => {
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

  it('a connection always gets its reserve, however much the others hold', async () => {
    const b = new ReplyBudget(100, 50);
    const hog = new ReplyAccount(b);
    await hog.acquire(100);
    await hog.acquire(50); // all of the shared pool
    let hogMore = false;
    void hog.acquire(10).then(() => (hogMore = true));
    const other = new ReplyAccount(b);
    await other.acquire(100); // its own reserve: granted at once
    assert.equal(b.used, 250);
    await tick();
    assert.equal(hogMore, false, 'the hog waits for shared bytes');
    assert.equal(b.waiting, 1);
    other.release(100); // reserve bytes only: the pool gets nothing back
    await tick();
    assert.equal(hogMore, false);
    hog.release(50); // shared bytes back: its waiting call goes on
    await tick();
    assert.equal(hogMore, true);
    assert.equal(b.peak, 250);
  });

  it("a connection's own waiting calls proceed when it gives back bytes of its reserve", async () => {
    const b = new ReplyBudget(100, 0);
    const c = new ReplyAccount(b);
    await c.acquire(60);
    let got = '';
    const p1 = c.acquire(50).then(() => (got += '1'));
    const p2 = c.acquire(10).then(() => (got += '2')); // fits, but waits its turn (in order)
    await tick();
    assert.equal(got, '');
    assert.equal(c.waiting, 2);
    c.release(60);
    await Promise.all([p1, p2]);
    assert.equal(got, '12');
    assert.equal(c.held, 60);
  });

  it('optional work (tryAcquire) uses the reserve, or the shared pool up to a ceiling, never waits', async () => {
    const b = new ReplyBudget(100, 80);
    const c = new ReplyAccount(b);
    assert.equal(c.tryAcquire(100, 0), true); // within the reserve
    assert.equal(c.tryAcquire(30, 20), false); // 30 shared > ceiling 20
    assert.equal(c.tryAcquire(20, 20), true);
    assert.equal(b.sharedUsed, 20);
    const d = new ReplyAccount(b);
    await d.acquire(100);
    await d.acquire(60); // the rest of the pool
    const w = d.acquire(1);
    assert.equal(c.tryAcquire(1), false, 'not while someone waits for shared bytes');
    c.force(5); // a built reply goes out even over the pool
    assert.equal(b.sharedAvailable, -5);
    c.release(125);
    await w;
    d.close();
    await assert.rejects(d.acquire(1));
    const e = new ReplyAccount(b);
    await e.acquire(100);
    const p = e.acquire(100);
    e.close();
    await assert.rejects(p, /closed/);
  });
});

describe('nfs reply pool', () => {
  it('reuses released buffers of its own, ignores others, stays under its cap', () => {
    const pool = new ReplyPool(3 * CLASSES[5]!);
    const a = pool.take(1024 * 1024);
    assert.equal(a.length, CLASSES[5]);
    pool.release(a.subarray(0, 100));
    pool.release(a.subarray(0, 100)); // twice: still pooled once
    assert.equal(pool.pooled, CLASSES[5]);
    const b = pool.take(1000 * 1000);
    assert.equal(b.buffer, a.buffer);
    assert.equal(pool.pooled, 0);
    pool.release(Buffer.alloc(CLASSES[5]!)); // not ours
    assert.equal(pool.pooled, 0);
    const many = Array.from({ length: 5 }, () => pool.take(CLASSES[5]!));
    for (const m of many) pool.release(m);
    assert.equal(pool.pooled, 3 * CLASSES[5]!);
    assert.equal(pool.take(100).length, 100); // small ones are plain buffers
    pool.clear();
    assert.equal(pool.pooled, 0);
  });
});

describe('nfs file cache', () => {
  it('keeps files open between reads, at most `max`, and closes them all on close()', async () => {
    const s = memStore({ a: 10, b: 10, c: 10 });
    const cache = new FileCache(s, { max: 2 });
    const a1 = await cache.acquire('a');
    cache.release(a1);
    const a2 = await cache.acquire('a');
    assert.equal(a2.file, a1.file);
    assert.equal(s.opens, 1);
    const [b, c] = await Promise.all([cache.acquire('b'), cache.acquire('c')]);
    // 'a' is in use: the cap waits until it is released.
    assert.equal(cache.openCount, 3);
    cache.release(b);
    cache.release(c);
    cache.release(a2);
    const d = await cache.acquire('b');
    cache.release(d);
    assert.ok(cache.openCount <= 3);
    await Promise.all([cache.acquire('a'), cache.acquire('a')].map(async (p) => cache.release(await p)));
    await cache.close();
    assert.equal(s.opens, s.closes);
    await assert.rejects(cache.acquire('a'));
  });

  it('closes idle files and reopens a file that changed', async () => {
    const files = { a: 10 };
    const s = memStore(files);
    const cache = new FileCache(s, { idleMs: 30, revalidateMs: 0 });
    cache.release(await cache.acquire('a'));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(cache.openCount, 0);
    assert.equal(s.closes, 1);
    cache.release(await cache.acquire('a'));
    files.a = 20; // replaced by a larger file
    const again = await cache.acquire('a');
    assert.equal(again.file.size, 20);
    cache.release(again);
    await cache.close();
    assert.equal(s.opens, s.closes);
  });
});
