import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IsoStore } from '../../nodes/lib/store/iso-store';
import { openStore } from '../../nodes/lib/store/open-store';
import { isStoreError, type FileStore } from '../../nodes/lib/store/types';
import {
  ARCHISO_FLAGS,
  assertMatchesTree,
  extract,
  genisoImage,
  LONG_JOLIET,
  LONG_RR,
  readStream,
  sampleTree,
  tempDir,
  writeTree,
  xorrisoImage,
} from '../helpers/iso-images';

describe('ISO store against xorriso extraction', () => {
  let dir: string;
  let src: string;
  const images: Record<string, { iso: string; tree: string; flags: string[] }> = {};

  before(() => {
    dir = tempDir('iso-store');
    src = path.join(dir, 'src');
    writeTree(src, sampleTree());
    const builds: [string, (out: string) => string][] = [
      ['archiso-flags', (out) => xorrisoImage(src, out, ARCHISO_FLAGS)],
      ['genisoimage-level1', (out) => genisoImage(src, out, [])],
      ['genisoimage-joliet', (out) => genisoImage(src, out, ['-J', '-joliet-long'])],
      ['genisoimage-rockridge', (out) => genisoImage(src, out, ['-R'])],
    ];
    for (const [name, build] of builds) {
      const iso = build(path.join(dir, `${name}.iso`));
      images[name] = { iso, tree: extract(iso, path.join(dir, `${name}.tree`)), flags: [] };
    }
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const [name, tree] of [
    ['archiso-flags', 'rockridge'],
    ['genisoimage-level1', 'iso9660'],
    ['genisoimage-joliet', 'joliet'],
    ['genisoimage-rockridge', 'rockridge'],
  ] as const) {
    it(`${name}: every name, size and byte equals the extracted tree`, async () => {
      const store = await new IsoStore(images[name].iso).init();
      try {
        assert.equal(store.tree, tree);
        assert.equal(store.volumeId, 'TEST_ISO');
        assert.equal(store.size, fs.statSync(images[name].iso).size);
        const files = await assertMatchesTree(store, images[name].tree);
        assert.ok(files >= 100, `compared ${files} files`);
      } finally {
        await store.close();
      }
    });
  }

  it('keeps long names: whole in Rock Ridge, 103 characters in Joliet, 8.3 in level 1', async () => {
    const names = async (iso: string) => {
      const s = await openStore(iso);
      try {
        return (await s.list('/')).map((e) => e.name);
      } finally {
        await s.close();
      }
    };
    assert.ok((await names(images['archiso-flags'].iso)).includes(LONG_RR));
    assert.ok((await names(images['genisoimage-rockridge'].iso)).includes(LONG_RR));
    const joliet = await names(images['genisoimage-joliet'].iso);
    assert.ok(joliet.includes(LONG_JOLIET), 'an 84-character Joliet name survives -joliet-long');
    assert.ok(joliet.some((n) => n.startsWith('rrrr') && n.length === 103), 'Joliet cuts at 103 characters');
    const plain = await names(images['genisoimage-level1'].iso);
    assert.ok(plain.every((n) => /^[A-Z0-9_]{1,8}(\.[A-Z0-9_]{1,3})?$/.test(n)), plain.join(' '));
  });

  describe('lookups (archiso flags)', () => {
    let store: FileStore;
    before(async () => {
      store = await openStore(images['archiso-flags'].iso);
    });
    after(() => store.close());

    it('normalises odd pxelinux paths and answers misses with ENOENT', async () => {
      const st = await store.stat('/arch//boot/syslinux/ldlinux.c32');
      assert.equal(st.path, 'arch/boot/syslinux/ldlinux.c32');
      assert.equal(st.size, 1234);
      await assert.rejects(store.stat('/arch//boot/syslinuxldlinux.c32'), (e) => isStoreError(e, 'ENOENT'));
      await assert.rejects(store.stat('/arch/ldlinux.c32'), (e) => isStoreError(e, 'ENOENT'));
      await assert.rejects(store.stat('/empty.txt/x'), (e) => isStoreError(e, 'ENOENT'));
      assert.equal((await store.stat('\\boot\\syslinux\\.\\syslinux.cfg')).path, 'boot/syslinux/syslinux.cfg');
    });

    it('matches exact names first, then case-insensitively, reporting the on-disc spelling', async () => {
      assert.equal((await store.stat('MixedCase.TXT')).path, 'MixedCase.TXT');
      assert.equal((await store.stat('BOOT/SYSLINUX/LDLINUX.C32')).path, 'boot/syslinux/ldlinux.c32');
      assert.equal((await store.stat('mixedcase.txt')).path, 'MixedCase.TXT');
      const plain = await openStore(images['genisoimage-level1'].iso);
      try {
        const st = await plain.stat('/boot/syslinux/ldlinux.c32');
        assert.equal(st.path, 'BOOT/SYSLINUX/LDLINUX.C32');
        assert.equal(st.size, 1235);
      } finally {
        await plain.close();
      }
    });

    it('follows symlinks inside the image and refuses the rest', async () => {
      const cfg = fs.readFileSync(path.join(src, 'boot/syslinux/syslinux.cfg'));
      assert.deepEqual(await readStream(await store.createReadStream('link-file')), cfg);
      assert.equal((await store.stat('link-dir/x86_64/vmlinuz-linux')).size, 300_001);
      assert.equal((await store.stat('link-dir/x86_64/vmlinuz-linux')).path, 'link-dir/x86_64/vmlinuz-linux');
      assert.equal((await store.stat('boot/link-up')).size, 70_000);
      assert.equal((await store.stat('chain1/initramfs-linux.img')).size, 1_048_579);
      assert.equal((await store.stat('LINK-DIR')).isDirectory, true);
      await assert.rejects(store.stat('dangling'), (e) => isStoreError(e, 'ENOENT'));
      await assert.rejects(store.stat('escape'), (e) => isStoreError(e, 'EACCES'));
      await assert.rejects(store.stat('loopA'), (e) => isStoreError(e, 'EBADIMAGE') && /symbolic links/.test(e.message));
    });

    it('refuses traversal, and reports directories and ranges like the folder store', async () => {
      await assert.rejects(store.stat('../etc/passwd'), (e) => isStoreError(e, 'EINVAL'));
      await assert.rejects(store.stat('arch/../../etc/passwd'), (e) => isStoreError(e, 'EINVAL'));
      await assert.rejects(store.open('arch'), (e) => isStoreError(e, 'EISDIR'));
      await assert.rejects(store.list('empty.txt'), (e) => isStoreError(e, 'ENOTDIR'));
      await assert.rejects(store.createReadStream('empty.txt', { start: 0, end: 0 }), (e) => isStoreError(e, 'ERANGE'));
      assert.equal((await readStream(await store.createReadStream('empty.txt'))).length, 0);
      const k = fs.readFileSync(path.join(src, 'arch/boot/x86_64/vmlinuz-linux'));
      assert.deepEqual(await readStream(await store.createReadStream('arch/boot/x86_64/vmlinuz-linux', { start: 2047, end: 4096 })), k.subarray(2047, 4097));
      assert.deepEqual(await readStream(await store.createReadStream('arch/boot/x86_64/vmlinuz-linux', { start: k.length - 1 })), k.subarray(-1));
      await assert.rejects(store.createReadStream('arch/boot/x86_64/vmlinuz-linux', { end: k.length }), (e) => isStoreError(e, 'ERANGE'));
      const f = await store.open('arch/boot/x86_64/vmlinuz-linux');
      const buf = Buffer.alloc(10);
      assert.equal(await f.read(buf, 0, 10, k.length - 3), 3);
      assert.equal(await f.read(buf, 0, 10, k.length + 5), 0);
      await assert.rejects(f.read(buf, 5, 10, 0), (e) => isStoreError(e, 'ERANGE'));
      await f.close();
    });
  });

  it('re-indexes an image replaced on disk, while open files keep reading the old one', async () => {
    const live = path.join(dir, 'live.iso');
    const other = path.join(dir, 'other-src');
    writeTree(other, { 'boot/syslinux/syslinux.cfg': 'NEW CONFIG\n', 'only-new.txt': 'new' });
    const newIso = xorrisoImage(other, path.join(dir, 'new.iso'), ARCHISO_FLAGS, 'NEW_ISO');
    fs.copyFileSync(images['archiso-flags'].iso, live);
    const oldCfg = fs.readFileSync(path.join(src, 'boot/syslinux/syslinux.cfg'));

    const slow = await new IsoStore(live, { recheckMs: 60_000 }).init();
    const store = await new IsoStore(live, { recheckMs: 0 }).init();
    try {
      const f = await store.open('boot/syslinux/syslinux.cfg');
      const stream = await store.createReadStream('arch/boot/x86_64/initramfs-linux.img');
      fs.renameSync(newIso, live);
      assert.deepEqual(await readStream(await store.createReadStream('boot/syslinux/syslinux.cfg')), Buffer.from('NEW CONFIG\n'));
      assert.equal(store.volumeId, 'NEW_ISO');
      assert.equal((await store.stat('only-new.txt')).size, 3);
      await assert.rejects(store.stat('arch'), (e) => isStoreError(e, 'ENOENT'));
      // Opened before the swap: still the old image's bytes.
      const buf = Buffer.alloc(oldCfg.length);
      assert.equal(await f.read(buf, 0, buf.length, 0), oldCfg.length);
      assert.deepEqual(buf, oldCfg);
      await f.close();
      assert.equal((await readStream(stream)).length, 1_048_579);
      // A store that checks rarely keeps serving what it indexed until its next check.
      assert.equal(slow.volumeId, 'TEST_ISO');
      assert.equal((await slow.stat('arch/boot/x86_64/vmlinuz-linux')).size, 300_001);
      // A corrupt replacement is reported, and a good one after it is picked up again.
      fs.writeFileSync(live, 'not an image');
      await assert.rejects(store.stat('/'), (e) => isStoreError(e, 'EBADIMAGE') && /not an ISO/.test(e.message));
      fs.copyFileSync(images['archiso-flags'].iso, live);
      fs.utimesSync(live, new Date(), new Date(Date.now() + 5000));
      assert.equal((await store.stat('arch/boot/x86_64/vmlinuz-linux')).size, 300_001);
    } finally {
      await store.close();
      await slow.close();
    }
    await assert.rejects(store.stat('/'), (e) => isStoreError(e, 'ENOENT') && /closed/.test(e.message));
  });

  it('refuses FIFOs recorded in an image (Rock Ridge), and does not list them', async () => {
    const fsrc = path.join(dir, 'fifo-src');
    writeTree(fsrc, { plain: 'plain' });
    execFileSync('mkfifo', [path.join(fsrc, 'fifo')]);
    const store = await new IsoStore(xorrisoImage(fsrc, path.join(dir, 'fifo.iso'))).init();
    try {
      await assert.rejects(store.stat('fifo'), (e) => isStoreError(e, 'EACCES') && /not a regular file/.test(e.message));
      await assert.rejects(store.open('fifo'), (e) => isStoreError(e, 'EACCES'));
      assert.deepEqual((await store.list('/')).map((e) => e.name), ['plain']);
    } finally {
      await store.close();
    }
  });

  it('openStore opens image files as ISO stores and refuses non-images', async () => {
    const store = await openStore(images['genisoimage-joliet'].iso);
    assert.equal(store.kind, 'iso');
    await store.close();
    const junk = path.join(dir, 'junk.bin');
    fs.writeFileSync(junk, Buffer.alloc(100_000, 0x41));
    await assert.rejects(openStore(junk), (e) => isStoreError(e, 'EBADIMAGE') && /CD001/.test(e.message));
  });
});
