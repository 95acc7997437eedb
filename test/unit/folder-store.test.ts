import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FolderStore } from '../../nodes/lib/store/folder-store';
import { openConfiguredStore, openStore } from '../../nodes/lib/store/open-store';
import { isStoreError, type FileStore } from '../../nodes/lib/store/types';

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

  it('refuses traversal and symlink escapes, and reports misses as not found', async () => {
    await assert.rejects(store.stat('../etc/passwd'), (e) => isStoreError(e, 'EINVAL'));
    await assert.rejects(store.stat('escape'), (e) => isStoreError(e, 'EACCES'));
    await assert.rejects(store.open('escapedir/secret'), (e) => isStoreError(e, 'EACCES'));
    await assert.rejects(store.stat('/arch//boot/syslinuxldlinux.c32'), (e) => isStoreError(e, 'ENOENT'));
    await assert.rejects(store.open('arch'), (e) => isStoreError(e, 'EISDIR'));
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
