// The NFS server end to end over loopback (random ports, 127.0.0.1), with the RPC client of
// nfs-client.ts: portmapper, MOUNT, NFS v3 reads from a folder store and an ISO store, directory
// paging, read-only refusals, RPC-level refusals, hostile input, memory bounds and close().
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { IPPROTO_TCP, IPPROTO_UDP, NFS3ERR_BAD_COOKIE, NFS3ERR_BADHANDLE, NFS3ERR_INVAL, NFS3ERR_ISDIR, NFS3ERR_NAMETOOLONG, NFS3ERR_NOENT, NFS3ERR_NOTDIR, NFS3ERR_ROFS, NFS3ERR_STALE, NFS3ERR_TOOSMALL } from '../../nodes/lib/nfs/nfs3-const';
import { NfsServer, TCP_MAX_REPLY, type NfsListening, type NfsMountEvent, type NfsReadProgress, type NfsServerOptions } from '../../nodes/lib/nfs/server';
import * as R from '../../nodes/lib/nfs/rpc';
import { FolderStore } from '../../nodes/lib/store/folder-store';
import { IsoStore } from '../../nodes/lib/store/iso-store';
import type { FileStore, StoreFile } from '../../nodes/lib/store/types';
import { tempDir, writeTree, xorrisoImage } from '../helpers/iso-images';
import * as C from './nfs-client';
import { memStore } from './nfs-memstore';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const ROOTFS = randomBytes(3 * 1024 * 1024 + 4321);
const KERNEL = randomBytes(200_003);
const TREE: Record<string, Buffer | string> = {
  'arch/x86_64/airootfs.sfs': ROOTFS,
  'arch/boot/x86_64/vmlinuz-linux': KERNEL,
  'hello.txt': 'hello\n',
  'empty.txt': '',
};
for (let i = 0; i < 150; i++) TREE[`many/entry-${String(i).padStart(3, '0')}-${'x'.repeat(i % 40)}`] = `${i}\n`;

/** A store wrapper that counts the StoreFiles open right now. */
function counting(store: FileStore): FileStore & { open: FileStore['open']; openFiles: number } {
  const w = Object.create(store) as FileStore & { openFiles: number };
  w.openFiles = 0;
  w.open = async (p: string): Promise<StoreFile> => {
    const f = await store.open(p);
    w.openFiles++;
    let closed = false;
    return {
      path: f.path,
      size: f.size,
      mtime: f.mtime,
      read: (b, o, l, pos) => f.read(b, o, l, pos),
      close: async () => {
        if (!closed) w.openFiles--;
        closed = true;
        await f.close();
      },
    };
  };
  return w;
}

async function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

describe('nfs server (loopback)', () => {
  let dir: string;
  let folder: FolderStore;
  let store: ReturnType<typeof counting>;
  let server: NfsServer;
  let l: NfsListening;
  const clients: { destroy(): void }[] = [];
  const udps: C.UdpRpc[] = [];

  before(async () => {
    dir = tempDir('nfs');
    writeTree(path.join(dir, 'root'), TREE);
    folder = await new FolderStore(path.join(dir, 'root')).init();
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function start(opts: Partial<NfsServerOptions> = {}, s: FileStore = folder): Promise<void> {
    store = counting(s);
    server = new NfsServer({ store, progressIntervalMs: 0, ...opts });
    l = await server.listen({ address: '127.0.0.1', nfsPort: 0, mountPort: 0, portmapPort: 0, portmap: 'own' });
  }

  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    for (const u of udps.splice(0)) u.close();
    await server?.close();
  });

  async function tcp(port = l.nfsPort): Promise<C.TcpRpc> {
    const c = await C.TcpRpc.connect(port);
    clients.push(c);
    return c;
  }

  async function udp(port = l.nfsPort): Promise<C.UdpRpc> {
    const u = await C.UdpRpc.open(port);
    udps.push(u);
    return u;
  }

  async function rootFh(): Promise<Buffer> {
    const m = await C.mnt(await tcp(l.mountPort), '/run/archiso/bootmnt');
    assert.equal(m.status, 0);
    return m.fh!;
  }

  it('portmapper: GETPORT finds MOUNT and NFS v3 on TCP and UDP, DUMP lists every mapping, SET/UNSET work from loopback', async () => {
    await start();
    const pm = await tcp(l.portmap.port!);
    const getport = async (prog: number, vers: number, prot: number): Promise<number> =>
      C.body(await pm.call(C.PMAP, 2, 3, C.w().uint32(prog).uint32(vers).uint32(prot).uint32(0).finish())).uint32();
    assert.equal(await getport(C.MOUNT, 3, IPPROTO_TCP), l.mountPort);
    assert.equal(await getport(C.MOUNT, 1, IPPROTO_UDP), l.mountPort);
    assert.equal(await getport(C.NFS, 3, IPPROTO_TCP), l.nfsPort);
    assert.equal(await getport(C.NFS, 3, IPPROTO_UDP), l.nfsPort);
    assert.equal(await getport(C.NFS, 2, IPPROTO_TCP), 0);
    const dump = C.body(await pm.call(C.PMAP, 2, 4));
    const maps: string[] = [];
    while (dump.bool()) maps.push([dump.uint32(), dump.uint32(), dump.uint32(), dump.uint32()].join('/'));
    assert.ok(maps.includes(`100003/3/6/${l.nfsPort}`) && maps.includes(`100005/1/17/${l.mountPort}`) && maps.includes(`100000/2/6/${l.portmap.port}`), maps.join(' '));
    // Over UDP too.
    const pu = await udp(l.portmap.port!);
    assert.equal(C.body(await pu.call(C.PMAP, 2, 3, C.w().uint32(C.NFS).uint32(3).uint32(IPPROTO_UDP).uint32(0).finish())).uint32(), l.nfsPort);
    // SET from loopback, a duplicate refused, UNSET.
    const set = async (port: number): Promise<boolean> => C.body(await pm.call(C.PMAP, 2, 1, C.w().uint32(400000).uint32(1).uint32(IPPROTO_TCP).uint32(port).finish())).bool();
    assert.equal(await set(1234), true);
    assert.equal(await set(1235), false);
    assert.equal(await getport(400000, 1, IPPROTO_TCP), 1234);
    assert.equal(C.body(await pm.call(C.PMAP, 2, 2, C.w().uint32(400000).uint32(1).uint32(0).uint32(0).finish())).bool(), true);
    assert.equal(await getport(400000, 1, IPPROTO_TCP), 0);
    // CALLIT is not served; rpcbind v3/v4 are not either.
    const callit = await pm.call(C.PMAP, 2, 5);
    assert.ok(callit.reply.accepted && callit.reply.stat === R.PROC_UNAVAIL);
    const v4 = await pm.call(C.PMAP, 4, 0);
    assert.ok(v4.reply.accepted && v4.reply.stat === R.PROG_MISMATCH);
    assert.deepEqual(v4.reply.mismatch, { low: 2, high: 2 });
  });

  it('MOUNT: MNT with auth flavors and events, unknown paths, EXPORT, DUMP, UMNT, v1', async () => {
    await start();
    const mounts: NfsMountEvent[] = [];
    const umounts: NfsMountEvent[] = [];
    server.on('mount', (m) => mounts.push(m));
    server.on('umount', (m) => umounts.push(m));
    const mc = await tcp(l.mountPort);
    const m = await C.mnt(mc, '/run/archiso/bootmnt');
    assert.equal(m.status, 0);
    assert.equal(m.fh!.length, 16);
    assert.deepEqual(m.flavors, [R.AUTH_SYS, R.AUTH_NONE]);
    // Both exports and a trailing slash name the same root.
    assert.deepEqual((await C.mnt(mc, '/')).fh, m.fh);
    assert.deepEqual((await C.mnt(mc, '/run/archiso/bootmnt/')).fh, m.fh);
    // A directory below an export; a file; unknown paths; escapes.
    const sub = await C.mnt(mc, '/run/archiso/bootmnt/arch');
    assert.equal(sub.status, 0);
    assert.notDeepEqual(sub.fh, m.fh);
    assert.equal((await C.mnt(mc, '/hello.txt')).status, 20);
    assert.equal((await C.mnt(mc, '/run/archiso/nothere')).status, 2);
    assert.equal((await C.mnt(mc, '/../../etc')).status, 13); // leaves the store
    assert.equal(mounts.length, 4);
    assert.deepEqual(mounts[0], { address: '127.0.0.1', port: (mc.sock.address() as net.AddressInfo).port, path: '/run/archiso/bootmnt' });
    assert.equal(server.mountCount, 3); // /run/archiso/bootmnt, /, /run/archiso/bootmnt/arch
    // EXPORT: both paths, no groups.
    const ex = C.body(await mc.call(C.MOUNT, 3, 5));
    const exports: string[] = [];
    while (ex.bool()) {
      exports.push(ex.string(1024));
      assert.equal(ex.bool(), false);
    }
    assert.deepEqual(exports, ['/run/archiso/bootmnt', '/']);
    // EXPORT and DUMP work over version 1 (showmount) and UDP; v1 MNT does not mount.
    const mu = await udp(l.mountPort);
    const ex1 = C.body(await mu.call(C.MOUNT, 1, 5));
    assert.equal(ex1.bool(), true);
    assert.equal(ex1.string(1024), '/run/archiso/bootmnt');
    const dump = C.body(await mu.call(C.MOUNT, 1, 2));
    const dumped: string[] = [];
    while (dump.bool()) dumped.push(`${dump.string(255)} ${dump.string(1024)}`);
    assert.deepEqual(dumped.sort(), ['127.0.0.1 /', '127.0.0.1 /run/archiso/bootmnt', '127.0.0.1 /run/archiso/bootmnt/arch']);
    const v1 = C.body(await mc.call(C.MOUNT, 1, 1, C.w().string('/').finish()));
    assert.equal(v1.uint32(), 13);
    // UMNT, then UMNTALL.
    await mc.call(C.MOUNT, 3, 3, C.w().string('/').finish());
    assert.deepEqual(umounts.map((u) => u.path), ['/']);
    await mc.call(C.MOUNT, 3, 4);
    assert.equal(server.mountCount, 0);
    assert.equal(umounts.length, 3);
    // MOUNT v4 does not exist.
    const v4 = await mc.call(C.MOUNT, 4, 0);
    assert.ok(v4.reply.accepted && v4.reply.stat === R.PROG_MISMATCH);
    assert.deepEqual(v4.reply.mismatch, { low: 1, high: 3 });
  });

  it('reads files whole over TCP (1 MiB READs, several in flight) and UDP (32 KiB), with progress events', async () => {
    await start();
    const reads: NfsReadProgress[] = [];
    server.on('read', (p) => reads.push(p));
    const root = await rootFh();
    const c = await tcp();
    const fh = await C.walk(c, root, 'arch/x86_64/airootfs.sfs');
    const attrs = (await C.getattr(c, fh)).attrs!;
    assert.equal(attrs.size, BigInt(ROOTFS.length));
    assert.equal(attrs.type, 1);
    assert.equal(attrs.mode, 0o444);
    assert.equal(attrs.nlink, 1);
    const got = await C.readAll(c, fh, ROOTFS.length, 1024 * 1024, 4);
    assert.equal(sha(got), sha(ROOTFS));
    const last = reads[reads.length - 1]!;
    assert.deepEqual(last, { address: '127.0.0.1', path: 'arch/x86_64/airootfs.sfs', bytes: ROOTFS.length, size: ROOTFS.length, share: 1, done: true });
    assert.equal(reads.filter((r) => r.done).length, 1);
    // A READ past the end, and a READ over rtmax (clipped).
    const past = await C.read(c, fh, ROOTFS.length + 10, 100);
    assert.deepEqual([past.status, past.count, past.eof], [0, 0, true]);
    const big = await C.read(c, fh, 0, 8 * 1024 * 1024);
    assert.deepEqual([big.status, big.count, big.eof], [0, 1024 * 1024, false]);
    // UDP: reads are clipped to 32 KiB.
    const u = await udp();
    const ufh = await C.walk(u, root, 'arch/boot/x86_64/vmlinuz-linux');
    const r1 = await C.read(u, ufh, 0, 65536);
    assert.equal(r1.count, 32768);
    assert.equal(sha(await C.readAll(u, ufh, KERNEL.length, 32768, 8)), sha(KERNEL));
    // Reading a directory.
    assert.equal((await C.read(c, root, 0, 10)).status, NFS3ERR_ISDIR);
    // An empty file is complete at once.
    const efh = await C.walk(c, root, 'empty.txt');
    const e = await C.read(c, efh, 0, 4096);
    assert.deepEqual([e.status, e.count, e.eof], [0, 0, true]);
    assert.ok(reads.some((r) => r.path === 'empty.txt' && r.done && r.share === 1 && r.size === 0));
  });

  it('a reader with one READ at a time is served from read ahead; jumps and closes leave nothing reserved', async () => {
    await start();
    const root = await rootFh();
    const c = await tcp();
    const fh = await C.walk(c, root, 'arch/x86_64/airootfs.sfs');
    assert.equal(sha(await C.readAll(c, fh, ROOTFS.length, 256 * 1024, 1)), sha(ROOTFS));
    const hits = server.stats.readAheadHits;
    assert.ok(hits >= 10, `${hits} read-ahead hits`);
    // Jumps (the read ahead is for another offset), smaller and larger READs than the last.
    for (const [off, n] of [[100_000, 70_000], [170_000, 70_000], [0, 300_000], [300_000, 100_000], [400_000, 500_000], [ROOTFS.length - 5000, 100_000]] as const) {
      const r = await C.read(c, fh, off, n);
      assert.equal(r.status, 0);
      assert.ok(r.count! > 0 && r.count! <= n);
      assert.deepEqual(r.data, ROOTFS.subarray(off, off + r.count!), `READ ${off}+${n}`);
    }
    // Another file in between.
    const k = await C.walk(c, root, 'arch/boot/x86_64/vmlinuz-linux');
    assert.deepEqual((await C.read(c, k, 0, 100_000)).data, KERNEL.subarray(0, 100_000));
    assert.deepEqual((await C.read(c, fh, 65536, 65536)).data, ROOTFS.subarray(65536, 131072));
    c.destroy();
    for (let i = 0; i < 50 && server.stats.replyBytes > 0; i++) await sleep(20);
    assert.equal(server.stats.replyBytes, 0);
  });

  it('a throwing event listener does not break the protocol: the read and the mount still succeed', async () => {
    await start();
    const errors: string[] = [];
    server.on('clientError', (e) => errors.push(e.message));
    server.on('mount', () => {
      throw new Error('listener bug');
    });
    server.on('read', () => {
      throw new Error('listener bug');
    });
    const root = await rootFh();
    const c = await tcp();
    const r = await C.read(c, await C.walk(c, root, 'hello.txt'), 0, 100);
    assert.equal(r.status, 0);
    assert.equal(r.data!.toString(), 'hello\n');
    assert.ok(errors.some((m) => /'mount' listener failed/.test(m)) && errors.some((m) => /'read' listener failed/.test(m)), errors.join('; '));
  });

  it('replies go out in one piece: the record mark and the whole reply in one write', async () => {
    await start();
    const root = await rootFh();
    const c = await tcp();
    const fh = await C.walk(c, root, 'hello.txt');
    c.chunks.length = 0;
    const r = await C.read(c, fh, 0, 100);
    assert.equal(r.data!.toString(), 'hello\n');
    // A small reply arrives as one chunk holding mark + body (klibc reads it with one read()).
    assert.equal(c.chunks.length, 1);
    assert.equal(c.chunks[0]!.readUInt32BE(0), (0x80000000 | (c.chunks[0]!.length - 4)) >>> 0);
  });

  it('FSINFO, PATHCONF, FSSTAT, ACCESS, GETATTR of directories, READLINK', async () => {
    await start();
    const root = await rootFh();
    const c = await tcp();
    const u = await udp();
    const fsinfo = async (rpc: C.Rpc): Promise<number[]> => {
      const r = C.body(await rpc.call(C.NFS, 3, 19, C.w().opaqueVar(root).finish()));
      assert.equal(r.uint32(), 0);
      C.readPostOp(r);
      const v = [r.uint32(), r.uint32(), r.uint32(), r.uint32(), r.uint32(), r.uint32(), r.uint32()];
      r.uint64();
      r.skip(8);
      v.push(r.uint32());
      assert.equal(r.remaining, 0);
      return v;
    };
    const [rtmax, rtpref, , , , , dtpref, props] = await fsinfo(c);
    assert.deepEqual([rtmax, rtpref, props], [1 << 20, 1 << 20, 0x8]);
    assert.ok(dtpref! >= 4096);
    assert.equal((await fsinfo(u))[0], 32768);
    const pc = C.body(await c.call(C.NFS, 3, 20, C.w().opaqueVar(root).finish()));
    assert.equal(pc.uint32(), 0);
    C.readPostOp(pc);
    assert.deepEqual([pc.uint32(), pc.uint32(), pc.bool(), pc.bool(), pc.bool(), pc.bool()], [1, 255, true, true, false, true]);
    const fss = C.body(await c.call(C.NFS, 3, 18, C.w().opaqueVar(root).finish()));
    assert.equal(fss.uint32(), 0);
    const access = async (fh: Buffer, mask: number): Promise<number> => {
      const r = C.body(await c.call(C.NFS, 3, 4, C.w().opaqueVar(fh).uint32(mask).finish()));
      assert.equal(r.uint32(), 0);
      assert.ok(C.readPostOp(r));
      return r.uint32();
    };
    assert.equal(await access(root, 0x3f), 0x23); // READ | LOOKUP | EXECUTE
    const file = await C.walk(c, root, 'hello.txt');
    assert.equal(await access(file, 0x3f), 0x1);
    const ga = (await C.getattr(c, root)).attrs!;
    assert.deepEqual([ga.type, ga.mode, ga.nlink, ga.uid, ga.gid, ga.fileid], [2, 0o555, 2, 0, 0, 1n]);
    const rl = C.body(await c.call(C.NFS, 3, 5, C.w().opaqueVar(file).finish()));
    assert.equal(rl.uint32(), NFS3ERR_INVAL);
  });

  it('LOOKUP: names that are refused, ".", ".." (the root is its own parent), files as directories', async () => {
    await start();
    const root = await rootFh();
    const c = await tcp();
    assert.equal((await C.lookup(c, root, '')).status, NFS3ERR_NOENT);
    assert.equal((await C.lookup(c, root, 'arch/x86_64')).status, NFS3ERR_INVAL);
    assert.equal((await C.lookup(c, root, Buffer.from('a\0b'))).status, NFS3ERR_INVAL);
    assert.equal((await C.lookup(c, root, 'x'.repeat(256))).status, NFS3ERR_NAMETOOLONG);
    assert.equal((await C.lookup(c, root, 'nothere')).status, NFS3ERR_NOENT);
    assert.equal((await C.lookup(c, root, Buffer.from([0xff, 0xfe]))).status, NFS3ERR_NOENT);
    assert.equal((await C.lookup(c, root, 'arch\\x86_64')).status, NFS3ERR_NOENT);
    const notFound = await C.lookup(c, root, 'nothere');
    assert.equal(notFound.dirAttrs?.type, 2); // failures still carry the directory's attributes
    const up = await C.lookup(c, root, '..');
    assert.equal(up.status, 0);
    assert.deepEqual(up.fh, root);
    assert.deepEqual((await C.lookup(c, root, '.')).fh, root);
    const arch = await C.walk(c, root, 'arch');
    const x86 = await C.walk(c, arch, 'x86_64');
    assert.deepEqual((await C.lookup(c, x86, '..')).fh, arch);
    const file = await C.walk(c, root, 'hello.txt');
    assert.equal((await C.lookup(c, file, 'x')).status, NFS3ERR_NOTDIR);
    // A name longer than any filename3 we parse: GARBAGE_ARGS.
    const huge = await c.call(C.NFS, 3, 3, C.w().opaqueVar(root).opaqueVar(Buffer.alloc(5000)).finish());
    assert.ok(huge.reply.accepted && huge.reply.stat === R.GARBAGE_ARGS);
  });

  it('READDIR and READDIRPLUS page through a directory with stable cookies and verifier', async () => {
    await start();
    const root = await rootFh();
    const c = await tcp();
    const many = await C.walk(c, root, 'many');
    const names = fs.readdirSync(path.join(dir, 'root', 'many')).sort();
    for (const plus of [false, true]) {
      const small = await C.readdirAll(c, many, 1024, plus);
      assert.deepEqual(small.entries.map((e) => e.name), ['.', '..', ...names]);
      assert.ok(small.pages > 5, `${small.pages} pages`);
      assert.deepEqual(small.entries.map((e) => e.cookie), small.entries.map((_, i) => BigInt(i + 1)));
      const large = await C.readdirAll(c, many, 64 * 1024, plus);
      assert.equal(large.pages, 1);
      assert.deepEqual(large.entries.map((e) => e.name), small.entries.map((e) => e.name));
    }
    const page = await C.readdir(c, many, 0n, Buffer.alloc(8), 2048, true);
    const e = page.entries.find((x) => x.name === 'entry-001-x')!;
    assert.equal(e.attrs!.type, 1);
    assert.equal(e.attrs!.size, 2n);
    // The handle READDIRPLUS gives reads the file; LOOKUP gives the same handle.
    assert.equal((await C.read(c, e.fh!, 0, 10)).data!.toString(), '1\n');
    assert.deepEqual((await C.lookup(c, many, 'entry-001-x')).fh, e.fh);
    // '..' of the directory is the root; the root's '..' is itself.
    assert.equal(page.entries[1]!.name, '..');
    assert.deepEqual(page.entries[1]!.fh, root);
    const rootPage = await C.readdir(c, root, 0n, Buffer.alloc(8), 8192, true);
    assert.deepEqual(rootPage.entries[1]!.fh, root);
    assert.deepEqual(rootPage.entries.map((x) => x.name).sort(), ['.', '..', 'arch', 'empty.txt', 'hello.txt', 'many']);
    // The verifier stays while the directory does; a wrong one with a cookie is refused.
    const again = await C.readdir(c, many, 0n, Buffer.alloc(8), 2048, true);
    assert.deepEqual(again.verf, page.verf);
    const bad = await C.readdir(c, many, 5n, Buffer.from('12345678'), 2048, false);
    assert.equal(bad.status, NFS3ERR_BAD_COOKIE);
    // Too small for one entry; a cookie past the end; not a directory.
    assert.equal((await C.readdir(c, many, 0n, Buffer.alloc(8), 100, true)).status, NFS3ERR_TOOSMALL);
    const end = await C.readdir(c, many, 100000n, page.verf!, 4096, false);
    assert.deepEqual([end.status, end.entries.length, end.eof], [0, 0, true]);
    const file = await C.walk(c, root, 'hello.txt');
    assert.equal((await C.readdir(c, file, 0n, Buffer.alloc(8), 4096, false)).status, NFS3ERR_NOTDIR);
  });

  it('every modifying procedure answers NFS3ERR_ROFS with the wcc data its result needs', async () => {
    await start();
    const root = await rootFh();
    const c = await tcp();
    const file = await C.walk(c, root, 'hello.txt');
    const dirop = (fh: Buffer, name: string): Buffer => C.w().opaqueVar(fh).string(name).finish();
    const sattrNone = C.w().uint32(0).uint32(0).uint32(0).uint32(0).uint32(0).uint32(0).finish();
    const cases: [string, number, Buffer, 'wcc' | 'wcc2' | 'link'][] = [
      ['SETATTR', 2, Buffer.concat([C.w().opaqueVar(file).finish(), sattrNone, C.w().uint32(0).finish()]), 'wcc'],
      ['WRITE', 7, C.w().opaqueVar(file).uint64(0n).uint32(5).uint32(0).opaqueVar(Buffer.from('hello')).finish(), 'wcc'],
      ['CREATE', 8, Buffer.concat([dirop(root, 'new'), C.w().uint32(0).finish(), sattrNone]), 'wcc'],
      ['MKDIR', 9, Buffer.concat([dirop(root, 'd'), sattrNone]), 'wcc'],
      ['SYMLINK', 10, Buffer.concat([dirop(root, 'l'), sattrNone, C.w().string('target').finish()]), 'wcc'],
      ['MKNOD', 11, Buffer.concat([dirop(root, 'n'), C.w().uint32(6).finish()]), 'wcc'],
      ['REMOVE', 12, dirop(root, 'hello.txt'), 'wcc'],
      ['RMDIR', 13, dirop(root, 'arch'), 'wcc'],
      ['RENAME', 14, Buffer.concat([dirop(root, 'hello.txt'), dirop(root, 'bye.txt')]), 'wcc2'],
      ['LINK', 15, Buffer.concat([C.w().opaqueVar(file).finish(), dirop(root, 'h2')]), 'link'],
      ['COMMIT', 21, C.w().opaqueVar(file).uint64(0n).uint32(0).finish(), 'wcc'],
    ];
    for (const [name, proc, args, shape] of cases) {
      const r = C.body(await c.call(C.NFS, 3, proc, args));
      assert.equal(r.uint32(), NFS3ERR_ROFS, name);
      if (shape === 'link') {
        assert.ok(C.readPostOp(r), `${name} file attributes`);
        assert.ok(C.readWcc(r).post, `${name} dir wcc`);
      } else {
        assert.ok(C.readWcc(r).post, `${name} wcc`);
        if (shape === 'wcc2') assert.ok(C.readWcc(r).post, `${name} second wcc`);
      }
      assert.equal(r.remaining, 0, `${name}: nothing after the result`);
    }
    // With a forged handle the handle's error comes first.
    const forged = C.body(await c.call(C.NFS, 3, 12, dirop(Buffer.alloc(16, 7), 'x')));
    assert.equal(forged.uint32(), NFS3ERR_BADHANDLE);
    assert.deepEqual(C.readWcc(forged), { pre: false, post: undefined });
  });

  it('RPC refusals over the wire: PROG_UNAVAIL, PROG_MISMATCH(3,3) for NFSv2, PROC_UNAVAIL, GARBAGE_ARGS, RPC_MISMATCH, AUTH_ERROR', async () => {
    await start();
    const c = await tcp();
    const stat = async (p: Promise<C.Reply>): Promise<number> => {
      const r = (await p).reply;
      return r.accepted ? r.stat : -1;
    };
    assert.equal(await stat(c.call(100227, 3, 0)), R.PROG_UNAVAIL); // NFS_ACL, which Linux probes
    assert.equal(await stat(c.call(C.MOUNT, 3, 0)), R.PROG_UNAVAIL); // MOUNT is on its own port
    const v2 = await c.call(C.NFS, 2, 0);
    assert.ok(v2.reply.accepted && v2.reply.stat === R.PROG_MISMATCH);
    assert.deepEqual(v2.reply.mismatch, { low: 3, high: 3 });
    assert.equal(await stat(c.call(C.NFS, 3, 22)), R.PROC_UNAVAIL);
    assert.equal(await stat(c.call(C.NFS, 3, 0)), R.SUCCESS);
    assert.equal(await stat(c.call(C.NFS, 3, 1, Buffer.from([0, 0, 0, 5]))), R.GARBAGE_ARGS); // a 5-byte handle, no bytes
    assert.equal(await stat(c.call(C.NFS, 3, 1, C.w().uint32(65).finish())), R.GARBAGE_ARGS); // a handle over 64 bytes
    // rpcvers 3, and an AUTH_DH credential: denied.
    const bad = R.encodeCall({ xid: 77, prog: C.NFS, vers: 3, proc: 0 });
    bad.writeUInt32BE(3, 8);
    const p1 = c.expect(77);
    c.write(R.withRecordMark(bad));
    const r1 = (await p1).reply;
    assert.ok(!r1.accepted && r1.rejectStat === R.RPC_MISMATCH);
    const dh = R.encodeCall({ xid: 78, prog: C.NFS, vers: 3, proc: 0 });
    dh.writeUInt32BE(R.AUTH_DH, 24);
    const p2 = c.expect(78);
    c.write(R.withRecordMark(dh));
    const r2 = (await p2).reply;
    assert.ok(!r2.accepted && r2.rejectStat === R.AUTH_ERROR && r2.authStat === R.AUTH_BADCRED);
    // The connection still works, and UDP answers the same way; garbage datagrams are dropped.
    assert.equal(await stat(c.call(C.NFS, 3, 0)), R.SUCCESS);
    const u = await udp();
    u.sendRaw(randomBytes(3));
    u.sendRaw(Buffer.from('00000001000000010000000000000000', 'hex'));
    assert.equal(await stat(u.call(C.NFS, 2, 0)), R.PROG_MISMATCH);
    assert.ok(server.stats.droppedDatagrams >= 2);
  });

  it('a record mark up to 2^31 closes the connection without allocating it; others are still served', async () => {
    await start();
    const errors: string[] = [];
    server.on('clientError', (e) => errors.push(e.message));
    for (const mark of [0xffffffff, 0x7fffffff, 0x80000000 | (300 * 1024)]) {
      const c = await tcp();
      const before = process.memoryUsage().arrayBuffers;
      const b = Buffer.alloc(4);
      b.writeUInt32BE(mark >>> 0);
      c.write(Buffer.concat([b, randomBytes(100)]));
      await c.closed;
      assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024);
    }
    assert.equal(errors.length, 3);
    const ok = await tcp();
    assert.ok((await ok.call(C.NFS, 3, 0)).reply.accepted);
  });

  it('random garbage records and datagrams (bounded fuzz) never break the server', async () => {
    await start();
    const root = await rootFh();
    for (let i = 0; i < 30; i++) {
      const c = await tcp();
      const call = R.encodeCall({ xid: 1000 + i, prog: C.NFS, vers: 3, proc: i % 22, args: C.w().opaqueVar(root).finish() });
      for (let k = 0; k < 4; k++) call[Math.floor(Math.random() * call.length)] = Math.floor(Math.random() * 256);
      c.write(R.withRecordMark(call));
      c.write(R.withRecordMark(randomBytes(Math.floor(Math.random() * 200))));
      const u = await udp();
      u.sendRaw(call);
      u.sendRaw(randomBytes(Math.floor(Math.random() * 300)));
    }
    await sleep(200);
    const c = await tcp();
    assert.equal((await C.getattr(c, root)).status, 0);
  });

  it('handles survive a restart on the same store; forged → BADHANDLE, other store → STALE', async () => {
    await start();
    let root = await rootFh();
    let c = await tcp();
    const fh = await C.walk(c, root, 'arch/x86_64/airootfs.sfs');
    const dirFh = await C.walk(c, root, 'many');
    await server.close();
    clients.splice(0).forEach((x) => x.destroy());
    // A second server on the same store: the old handles still work (the index is rebuilt by a walk).
    await start();
    c = await tcp();
    assert.equal(server.stats.storeWalks, 0);
    const r = await C.read(c, fh, 0, 4096);
    assert.equal(r.status, 0);
    assert.deepEqual(r.data, ROOTFS.subarray(0, 4096));
    assert.equal(server.stats.storeWalks, 1);
    assert.equal((await C.lookup(c, dirFh, 'entry-002-xx')).status, 0);
    root = await rootFh();
    assert.deepEqual(await C.walk(c, root, 'arch/x86_64/airootfs.sfs'), fh);
    // Forged handles: wrong length, wrong magic; a well-formed handle of an unknown file.
    assert.equal((await C.getattr(c, Buffer.alloc(16))).status, NFS3ERR_BADHANDLE);
    assert.equal((await C.getattr(c, fh.subarray(0, 15))).status, NFS3ERR_BADHANDLE);
    const unknown = Buffer.from(fh);
    unknown.writeBigUInt64BE(0x123456789n, 8);
    assert.equal((await C.getattr(c, unknown)).status, NFS3ERR_STALE);
    // A handle of another store (another generation) is stale.
    const other = Buffer.from(fh);
    other[5]! ^= 0xff;
    assert.equal((await C.getattr(c, other)).status, NFS3ERR_STALE);
  });

  it('serves an ISO image store: LOOKUP, READ, READDIRPLUS, sha256 equal', async (t) => {
    const src = path.join(dir, 'iso-src');
    writeTree(src, { 'arch/x86_64/airootfs.sfs': ROOTFS.subarray(0, 1_500_001), 'arch/boot/x86_64/vmlinuz-linux': KERNEL, 'boot/syslinux/syslinux.cfg': 'DEFAULT arch\n' });
    let iso: IsoStore;
    try {
      iso = await new IsoStore(xorrisoImage(src, path.join(dir, 'test.iso'))).init();
    } catch (err) {
      t.skip(`xorriso unavailable: ${(err as Error).message}`);
      return;
    }
    try {
      await start({}, iso);
      const root = await rootFh();
      const c = await tcp();
      const fh = await C.walk(c, root, 'arch/x86_64/airootfs.sfs');
      assert.equal(sha(await C.readAll(c, fh, 1_500_001, 256 * 1024, 3)), sha(ROOTFS.subarray(0, 1_500_001)));
      const u = await udp();
      const kfh = await C.walk(u, root, 'arch/boot/x86_64/vmlinuz-linux');
      assert.equal(sha(await C.readAll(u, kfh, KERNEL.length, 32768, 4)), sha(KERNEL));
      const list = await C.readdirAll(c, await C.walk(c, root, 'boot/syslinux'), 4096, true);
      assert.deepEqual(list.entries.map((e) => e.name), ['.', '..', 'syslinux.cfg']);
      assert.equal(list.entries[2]!.attrs!.size, 13n);
    } finally {
      await server.close();
      await iso.close();
    }
  });

  it('a client that sends READs and never reads the replies: memory stays bounded, others are served', async () => {
    await start({ maxQueuedBytesPerConnection: 2 * 1024 * 1024 });
    const root = await rootFh();
    const hog = await tcp();
    // Stop reading on the client side: its receive buffer fills, then ours.
    hog.sock.pause();
    const fh = await C.walk(await tcp(), root, 'arch/x86_64/airootfs.sfs');
    const burst: Buffer[] = [];
    for (let i = 0; i < 2000; i++) burst.push(R.withRecordMark(R.encodeCall({ xid: 50_000 + i, prog: C.NFS, vers: 3, proc: 6, args: C.readCall(fh, (i % 3) * 1024 * 1024, 1024 * 1024) })));
    hog.write(Buffer.concat(burst));
    let peak = 0;
    for (let i = 0; i < 30; i++) {
      await sleep(50);
      peak = Math.max(peak, server.stats.replyBytes);
    }
    // One connection: at most its 2 MiB + one READ (1 MiB) + headers.
    assert.ok(server.stats.replyBytesPeak <= 2 * 1024 * 1024 + 1024 * 1024 + 64 * 1024, `peak ${server.stats.replyBytesPeak}`);
    assert.ok(peak > 0);
    // Someone else reads a whole file meanwhile.
    const c = await tcp();
    const kfh = await C.walk(c, root, 'arch/boot/x86_64/vmlinuz-linux');
    assert.equal(sha(await C.readAll(c, kfh, KERNEL.length, 65536, 2)), sha(KERNEL));
  });

  it('the reply budget bounds many hogs together (a reserve each + the shared pool); a stalled connection is closed and frees its share', async () => {
    const shared = 3 * 1024 * 1024;
    await start({ maxQueuedBytesPerConnection: 2 * 1024 * 1024, sharedReplyBytes: shared, stallTimeoutMs: 1500 });
    const errors: string[] = [];
    server.on('clientError', (e) => errors.push(e.message));
    const root = await rootFh();
    const fh = await C.walk(await tcp(), root, 'arch/x86_64/airootfs.sfs');
    const baseline = server.connectionCount;
    const hogs: C.TcpRpc[] = [];
    for (let h = 0; h < 6; h++) {
      const hog = await tcp();
      hog.sock.pause();
      const burst: Buffer[] = [];
      for (let i = 0; i < 300; i++) burst.push(R.withRecordMark(R.encodeCall({ xid: 60_000 + i, prog: C.NFS, vers: 3, proc: 6, args: C.readCall(fh, 0, 1024 * 1024) })));
      hog.write(Buffer.concat(burst));
      hogs.push(hog);
    }
    await sleep(500);
    // Each hog alone could hold 2 MiB + 1 MiB: together they get their reserves and the pool.
    assert.ok(server.stats.replyBytesPeak <= 6 * TCP_MAX_REPLY + shared + 64 * 1024, `peak ${server.stats.replyBytesPeak}`);
    assert.ok(server.stats.budgetWaiters > 0, 'hogs wait for shared bytes');
    // The shared pool is spent, yet a newcomer is served at once from its own reserve.
    const early = await tcp();
    const t0 = Date.now();
    const efh = await C.walk(early, root, 'arch/boot/x86_64/vmlinuz-linux');
    assert.equal(sha(await C.readAll(early, efh, KERNEL.length, 65536, 2)), sha(KERNEL));
    assert.ok(Date.now() - t0 < 1000, `a reader beside the hogs took ${Date.now() - t0} ms`);
    assert.ok(server.connectionCount >= baseline + 6, 'the hogs were still connected meanwhile');
    early.sock.destroy();
    // The hogs are cut off after the stall timeout (they do not read, so they do not notice);
    // then a reader is served.
    for (let i = 0; i < 200 && server.connectionCount > baseline; i++) await sleep(50);
    assert.equal(server.connectionCount, baseline);
    assert.ok(errors.some((m) => /unread/.test(m)), errors.join('; '));
    const c = await tcp();
    const kfh = await C.walk(c, root, 'arch/boot/x86_64/vmlinuz-linux');
    assert.equal(sha(await C.readAll(c, kfh, KERNEL.length, 65536, 2)), sha(KERNEL));
    assert.ok(server.stats.replyBytes < 1024 * 1024);
  });

  it('files over 4 GiB: sizes and offsets beyond 2^32 are exact', async () => {
    const size = 5 * 2 ** 30 + 3;
    await start({}, memStore({ 'big/huge.img': size }));
    const root = await rootFh();
    const c = await tcp();
    const fh = await C.walk(c, root, 'big/huge.img');
    assert.equal((await C.getattr(c, fh)).attrs!.size, BigInt(size));
    const off = 4.5 * 2 ** 30 + 1;
    const r = await C.read(c, fh, off, 1000);
    assert.equal(r.attrs!.size, BigInt(size));
    assert.deepEqual([...r.data!.subarray(0, 4)], [0, 1, 2, 3].map((i) => (off + i) & 0xff));
    const tail = await C.read(c, fh, size - 2, 1000);
    assert.deepEqual([tail.count, tail.eof], [2, true]);
    const page = await C.readdir(c, await C.walk(c, root, 'big'), 0n, Buffer.alloc(8), 4096, true);
    assert.equal(page.entries[2]!.attrs!.size, BigInt(size));
  });

  it('idle connections are closed after idleTimeoutMs', async () => {
    await start({ idleTimeoutMs: 200 });
    const c = await tcp();
    assert.ok((await c.call(C.NFS, 3, 0)).reply.accepted);
    await c.closed;
    for (let i = 0; i < 50 && server.connectionCount > 0; i++) await sleep(10);
    assert.equal(server.connectionCount, 0);
  });

  it('more connections than maxConnections are refused at once', async () => {
    await start({ maxConnections: 2 });
    const refused: unknown[] = [];
    server.on('refused', (r) => refused.push(r));
    const a = await tcp();
    const b = await tcp(l.mountPort);
    const extra = await tcp(l.portmap.port!);
    await extra.closed;
    assert.equal(refused.length, 1);
    assert.deepEqual(Object.keys(refused[0] as object).sort(), ['address', 'max', 'port']);
    assert.ok((await a.call(C.NFS, 3, 0)).reply.accepted);
    assert.ok((await b.call(C.MOUNT, 3, 0)).reply.accepted);
    assert.equal(server.connectionCount, 2);
  });

  it('close() releases ports, connections and open files, and ends client connections', async () => {
    const kinds = ['TCPServerWrap', 'UDPWrap', 'TCPSocketWrap', 'Timeout'];
    const count = (): Record<string, number> => Object.fromEntries(kinds.map((k) => [k, process.getActiveResourcesInfo().filter((r) => r === k).length]));
    const before = count();
    await start({ progressIntervalMs: 60_000 });
    const root = await rootFh();
    const c = await tcp();
    const fh = await C.walk(c, root, 'arch/x86_64/airootfs.sfs');
    await C.read(c, fh, 0, 4096);
    const pending = C.read(c, fh, 4096, 1024 * 1024).catch(() => undefined);
    assert.equal(store.openFiles, 1);
    const ports = [l.nfsPort, l.mountPort, l.portmap.port!];
    await server.close();
    await pending;
    await c.closed;
    assert.equal(store.openFiles, 0);
    assert.equal(server.connectionCount, 0);
    for (const p of ports) assert.ok(await canBind(p), `port ${p} still bound`);
    await server.close(); // idempotent
    for (const u of udps.splice(0)) u.close();
    for (const x of clients.splice(0)) x.destroy();
    await sleep(50);
    // No socket or server of ours is left, nor a timer that would keep the process alive.
    const after = count();
    for (const k of kinds) assert.ok(after[k]! <= before[k]!, `${k}: ${before[k]} before, ${after[k]} after`);
  });

  it('listen() failure: the original error with .port, nothing left open', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      server = new NfsServer({ store: folder });
      const err = (await server.listen({ address: '127.0.0.1', nfsPort: 0, mountPort: taken, portmapPort: 0, portmap: 'own' }).catch((e: unknown) => e)) as NodeJS.ErrnoException & { port?: number };
      assert.equal(err.code, 'EADDRINUSE');
      assert.equal(err.port, taken);
      // The NFS port it had bound is free again, and the server can listen after all.
      l = await server.listen({ address: '127.0.0.1', nfsPort: 0, mountPort: 0, portmapPort: 0, portmap: 'off' });
      assert.deepEqual(l.portmap, { mode: 'off', port: null });
      // 'own' on a busy portmapper port fails; 'auto' would register instead (below).
      const s2 = new NfsServer({ store: folder });
      const e2 = (await s2.listen({ address: '127.0.0.1', nfsPort: 0, mountPort: 0, portmapPort: taken, portmap: 'own' }).catch((e: unknown) => e)) as NodeJS.ErrnoException;
      assert.equal(e2.code, 'EADDRINUSE');
      await s2.close();
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });
});
