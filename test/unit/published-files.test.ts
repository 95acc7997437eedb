import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openConfiguredStore } from '../../nodes/lib/store/open-store';
import { PUBLISHED_LIMITS, PublishedFiles } from '../../nodes/lib/store/published-files';
import { LayeredStore } from '../../nodes/lib/store/layered-store';

async function readAll(store: Awaited<ReturnType<typeof openConfiguredStore>>, p: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of await store.createReadStream(p)) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

describe('published files', () => {
  let dir: string;
  let image: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-published-'));
    image = path.join(dir, 'image');
    fs.mkdirSync(path.join(image, 'boot'), { recursive: true });
    fs.writeFileSync(path.join(image, 'boot', 'menu.cfg'), 'from the image');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('are served in front of the image, and the image shows again once deleted', async () => {
    const pub = await new PublishedFiles(path.join(dir, 'p1')).init();
    const store = await openConfiguredStore(image, undefined, pub.folder);
    assert.ok(store instanceof LayeredStore);
    assert.equal(store.source, image, 'the image stays the store proper');
    assert.equal(await readAll(store, '/boot/menu.cfg'), 'from the image');
    const f = await pub.set('/boot/menu.cfg', 'from the flow');
    assert.deepEqual([f.path, f.size], ['boot/menu.cfg', 13]);
    await pub.set('install.sh', Buffer.from('#!/bin/sh\necho hi\n'));
    assert.equal(await readAll(store, 'boot/menu.cfg'), 'from the flow');
    assert.equal(await readAll(store, '/install.sh'), '#!/bin/sh\necho hi\n');
    assert.deepEqual((await store.list('/')).map((e) => e.name), ['boot', 'install.sh']);
    assert.deepEqual((await pub.list()).map((e) => e.path), ['boot/menu.cfg', 'install.sh']);
    assert.equal(await pub.delete('boot/menu.cfg'), true);
    assert.equal(await pub.delete('boot/menu.cfg'), false);
    assert.equal(fs.existsSync(path.join(pub.folder, 'boot')), false, 'an emptied folder goes too');
    assert.equal(await readAll(store, 'boot/menu.cfg'), 'from the image');
    await store.close();
  });

  it('a reader of the old version reads it whole while it is replaced', async () => {
    const pub = await new PublishedFiles(path.join(dir, 'p2')).init();
    const store = await openConfiguredStore(image, undefined, pub.folder);
    await pub.set('a.txt', 'x'.repeat(100_000));
    const file = await store.open('a.txt');
    await pub.set('a.txt', 'y');
    const buf = Buffer.alloc(100_000);
    assert.equal(await file.read(buf, 0, buf.length, 0), 100_000);
    assert.equal(buf.toString(), 'x'.repeat(100_000));
    await file.close();
    assert.equal(await readAll(store, 'a.txt'), 'y');
    await store.close();
  });

  it('refuse paths that leave the store, NUL bytes, empty paths and folders', async () => {
    const pub = await new PublishedFiles(path.join(dir, 'p3')).init();
    await assert.rejects(pub.set('../outside', 'x'), /leaves the store root/);
    await assert.rejects(pub.set('/a/../../outside', 'x'), /leaves the store root/);
    await assert.rejects(pub.set('a\0b', 'x'), /NUL/);
    await assert.rejects(pub.set('/', 'x'), /a file path is needed/);
    await pub.set('dir/file', 'x');
    await assert.rejects(pub.set('dir', 'x'), /folder of published files/);
    await assert.rejects(pub.set('dir/file/below', 'x'), /is a published file/);
    await assert.rejects(pub.delete('dir'), /folder of published files/);
    assert.equal(fs.existsSync(path.join(dir, 'outside')), false);
    assert.deepEqual((await pub.list()).map((f) => f.path), ['dir/file']);
  });

  it('bound file size, file count and total size', async () => {
    await assert.rejects(new PublishedFiles(path.join(dir, 'p4')).init().then((p) => p.set('big', Buffer.alloc(10 * 1024 * 1024))), /at most 4194304/);
    const small = await new PublishedFiles(path.join(dir, 'p5'), { maxFileBytes: 100, maxFiles: 3, maxTotalBytes: 250 }).init();
    await small.set('a', Buffer.alloc(100));
    await small.set('b', Buffer.alloc(100));
    await assert.rejects(small.set('c', Buffer.alloc(100)), /would take 300 bytes/);
    await small.set('c', Buffer.alloc(50));
    await assert.rejects(small.set('d', 'x'), /already 3 published files/);
    await small.set('a', Buffer.alloc(10)); // replacing counts the new size only
    assert.deepEqual((await small.list()).map((f) => f.size), [10, 100, 50]);
    assert.equal(PUBLISHED_LIMITS.maxFiles, 1000);
  });

  it('10,000 publish attempts end at the file limit, with clear refusals', async () => {
    const pub = await new PublishedFiles(path.join(dir, 'p6'), { ...PUBLISHED_LIMITS, maxFiles: 200 }).init();
    let refused = 0;
    for (let i = 0; i < 10_000; i++) {
      await pub.set(`f/${i}`, 'x').catch((err: Error) => {
        assert.match(err.message, /already 200 published files/);
        refused++;
      });
      if (refused > 50) break; // the refusal is steady; no need to run all 10,000 through the disk
    }
    assert.equal((await pub.list()).length, 200);
    assert.equal(refused, 51);
  });

  it('drop temporaries a crash left behind, and keep files across a restart', async () => {
    const folder = path.join(dir, 'p7');
    await (await new PublishedFiles(folder).init()).set('kept.cfg', 'kept');
    fs.writeFileSync(path.join(folder, '.pxe-publishing-deadbeef'), 'half');
    const again = await new PublishedFiles(folder).init();
    assert.deepEqual((await again.list()).map((f) => f.path), ['kept.cfg']);
    assert.deepEqual(fs.readdirSync(folder), ['kept.cfg']);
  });
});
