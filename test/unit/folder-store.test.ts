import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nativePreadNowait } from '../../nodes/lib/native-udp';
import { FolderStore } from '../../nodes/lib/store/folder-store';
import { openConfiguredStore, openStore } from '../../nodes/lib/store/open-store';
import { isStoreError, type FileStore } from '../../nodes/lib/store/types';

/** Rejects if `p` has not settled within `ms` (an open() blocked on a FIFO never does). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

/** Lets any open() still blocked on the FIFO return (a writer appears), so the process can exit. */
function unblockFifo(fifo: string): void {
  try {
    fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
  } catch {
    // no reader waiting (ENXIO): nothing blocked
  }
}

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('folder store', () => {
  let dir: string;
  let outside: string;
  let store: FileStore;
  const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => i & 0xff));

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-folder-'));
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-outside-'));
    fs.mkdirSync(path.join(dir, 'arch/boot'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'arch/boot/vmlinuz'), data);
    fs.writeFileSync(path.join(dir, 'empty'), '');
    fs.writeFileSync(path.join(outside, 'secret'), 'secret');
    fs.symlinkSync(path.join(outside, 'secret'), path.join(dir, 'escape'));
    fs.symlinkSync(outside, path.join(dir, 'escapedir'));
    fs.symlinkSync('arch/boot/vmlinuz', path.join(dir, 'inside-link'));
    store = await openStore(dir);
  });
  after(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });

  it('stats and lists with normalised paths', async () => {
    const st = await store.stat('\\arch//boot/./vmlinuz');
    assert.equal(st.path, 'arch/boot/vmlinuz');
    assert.equal(st.size, data.length);
    assert.equal(st.isDirectory, false);
    const names = (await store.list('/')).map((e) => e.name);
    assert.deepEqual(names, ['arch', 'empty', 'inside-link']);
  });

  it('reads whole files, ranges, empty files, and by position', async () => {
    assert.deepEqual(await readAll(await store.createReadStream('/arch/boot/vmlinuz')), data);
    assert.deepEqual(await readAll(await store.createReadStream('arch/boot/vmlinuz', { start: 10, end: 19 })), data.subarray(10, 20));
    assert.equal((await readAll(await store.createReadStream('empty'))).length, 0);
    const f = await store.open('inside-link');
    const buf = Buffer.alloc(100);
    assert.equal(await f.read(buf, 0, 100, 4950), 50);
    assert.deepEqual(buf.subarray(0, 50), data.subarray(4950));
    await f.close();
    await assert.rejects(store.createReadStream('arch/boot/vmlinuz', { start: 0, end: data.length }), (e) => isStoreError(e, 'ERANGE'));
  });

  it('reads page-cached bytes synchronously when the native addon is built, and nothing once closed', async (t) => {
    const f = await store.open('arch/boot/vmlinuz');
    if (!f.readCached) {
      await f.close();
      return t.skip('native addon not built');
    }
    await f.read(Buffer.alloc(data.length), 0, data.length, 0); // now cached
    // Where preadv2 cannot do RWF_NOWAIT (qemu-user in the emulated ARM job answers EOPNOTSUPP or
    // ENOSYS), readCached reads nothing and callers read the usual way: that is all to check there.
    const probe = nativePreadNowait()!;
    const fd = fs.openSync(path.join(dir, 'arch/boot/vmlinuz'), 'r');
    const got = probe(fd, Buffer.alloc(16), 0, 16, 0);
    fs.closeSync(fd);
    if (got < 0 && -got !== os.constants.errno.EAGAIN) {
      assert.equal(f.readCached(Buffer.alloc(16), 0, 16, 0), -1, 'nothing read where the kernel cannot');
      await f.close();
      return t.skip(`preadv2 RWF_NOWAIT not supported here (errno ${-got}): the fallback answered -1`);
    }
    const buf = Buffer.alloc(200);
    assert.equal(f.readCached(buf, 0, 200, 4900), 100, 'short at the end of the file');
    assert.deepEqual(buf.subarray(0, 100), data.subarray(4900));
    assert.equal(f.readCached(buf, 0, 200, data.length), 0, 'nothing past the end');
    await f.close();
    assert.equal(f.readCached(buf, 0, 200, 0), -1, 'a closed file reads nothing');
  });

  it('refuses traversal and symlink escapes, and reports misses as not found', async () => {
    await assert.rejects(store.stat('../etc/passwd'), (e) => isStoreError(e, 'EINVAL'));
    await assert.rejects(store.stat('escape'), (e) => isStoreError(e, 'EACCES'));
    await assert.rejects(store.open('escapedir/secret'), (e) => isStoreError(e, 'EACCES'));
    await assert.rejects(store.stat('/arch//boot/syslinuxldlinux.c32'), (e) => isStoreError(e, 'ENOENT'));
    await assert.rejects(store.open('arch'), (e) => isStoreError(e, 'EISDIR'));
  });

  it('refuses FIFOs and sockets at once, without opening them, and does not list them', async () => {
    const special = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-special-'));
    const fifo = path.join(special, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const sock = net.createServer().listen(path.join(special, 'sock'));
    await new Promise((r) => sock.once('listening', r));
    fs.symlinkSync('fifo', path.join(special, 'fifo-link'));
    fs.writeFileSync(path.join(special, 'plain'), 'plain');
    const st = await openStore(special);
    try {
      for (const name of ['fifo', 'sock', 'fifo-link']) {
        const refused = (e: unknown): boolean => isStoreError(e, 'EACCES') && /not a regular file/.test((e as Error).message);
        await assert.rejects(within(st.stat(name), 2000, `stat ${name}`), refused, `stat ${name}`);
        await assert.rejects(within(st.open(name), 2000, `open ${name}`), refused, `open ${name}`);
        await assert.rejects(within(st.createReadStream(name), 2000, `stream ${name}`), refused, `stream ${name}`);
      }
      // More requests than libuv has file threads (4): none may be left blocked in open().
      await within(Promise.all(Array.from({ length: 16 }, () => st.open('fifo').then(() => assert.fail('opened'), () => undefined))), 2000, '16 opens');
      const f = await within(st.open('plain'), 2000, 'open of a plain file');
      await f.close();
      assert.deepEqual((await st.list('/')).map((e) => e.name), ['plain']);
    } finally {
      unblockFifo(fifo);
      await st.close();
      await new Promise((r) => sock.close(r));
      fs.rmSync(special, { recursive: true, force: true });
    }
  });

  it('answers a symlink loop as not found, naming no server path', async () => {
    const loop = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-loop-'));
    fs.symlinkSync('b', path.join(loop, 'a'));
    fs.symlinkSync('a', path.join(loop, 'b'));
    const st = await openStore(loop);
    try {
      for (const op of [() => st.stat('a'), () => st.open('a'), () => st.list('b')]) {
        await assert.rejects(op(), (e: Error) => isStoreError(e, 'ENOENT') && !e.message.includes(loop) && /symlink loop/.test(e.message));
      }
    } finally {
      await st.close();
      fs.rmSync(loop, { recursive: true, force: true });
    }
  });

  it('refuses a root that does not exist', async () => {
    await assert.rejects(openStore(path.join(dir, 'nope')), (e) => isStoreError(e, 'ENOENT'));
    await assert.rejects(new FolderStore(path.join(dir, 'empty')).init(), (e) => isStoreError(e, 'ENOTDIR'));
  });
});

describe('layered store', () => {
  it('serves an image or folder with a folder of extra files after it', async () => {
    const a = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-layer-a-'));
    const b = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-layer-b-'));
    try {
      fs.mkdirSync(path.join(a, 'boot'));
      fs.writeFileSync(path.join(a, 'boot', 'x.cfg'), 'from a');
      fs.writeFileSync(path.join(a, 'same'), 'a wins');
      fs.writeFileSync(path.join(b, 'snponly.efi'), 'efi');
      fs.writeFileSync(path.join(b, 'same'), 'b loses');
      fs.symlinkSync('/etc/passwd', path.join(b, 'escape'));
      const store = await openConfiguredStore(a, b);
      assert.equal(store.kind, 'folder');
      assert.equal(store.source, a);
      assert.equal((await readAll(await store.createReadStream('/snponly.efi'))).toString(), 'efi');
      assert.equal((await readAll(await store.createReadStream('same'))).toString(), 'a wins');
      assert.equal((await store.stat('boot/x.cfg')).size, 6);
      assert.deepEqual((await store.list('/')).map((e) => e.name), ['boot', 'same', 'snponly.efi']);
      await assert.rejects(store.stat('nothing'), (e) => isStoreError(e, 'ENOENT'));
      await assert.rejects(store.stat('escape'), (e) => isStoreError(e, 'EACCES'), 'a refusal does not fall through');
      await assert.rejects(store.stat('../x'), (e) => isStoreError(e, 'EINVAL'));
      await store.close();
      await assert.rejects(openConfiguredStore(a, path.join(b, 'missing')), (e) => isStoreError(e, 'ENOENT'));
    } finally {
      fs.rmSync(a, { recursive: true, force: true });
      fs.rmSync(b, { recursive: true, force: true });
    }
  });
});
