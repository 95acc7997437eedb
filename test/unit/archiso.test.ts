import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { detectArchiso } from '../../nodes/lib/store/archiso';
import { describeStore } from '../../nodes/lib/store/describe';
import { openStore } from '../../nodes/lib/store/open-store';
import { tempDir, writeTree, xorrisoImage } from '../helpers/iso-images';

const common = {
  'arch/boot/x86_64/vmlinuz-linux': 'kernel',
  'arch/boot/x86_64/initramfs-linux.img': 'initramfs',
  'arch/x86_64/airootfs.sfs': 'squashfs',
  'EFI/BOOT/BOOTx64.EFI': 'efi',
};

const layouts = {
  'boot-syslinux': {
    tree: { ...common, 'boot/syslinux/lpxelinux.0': 'l', 'boot/syslinux/ldlinux.c32': 'c', 'boot/syslinux/syslinux.cfg': 'cfg' },
    files: { lpxelinux: 'boot/syslinux/lpxelinux.0', ldlinux: 'boot/syslinux/ldlinux.c32', config: 'boot/syslinux/syslinux.cfg' },
    dhcp: { bootFile: '/boot/syslinux/lpxelinux.0', configFile: 'syslinux.cfg', pathPrefix: '/boot/syslinux/' },
  },
  syslinux: {
    tree: { ...common, 'syslinux/lpxelinux.0': 'l', 'syslinux/ldlinux.c32': 'c', 'syslinux/syslinux.cfg': 'cfg' },
    files: { lpxelinux: 'syslinux/lpxelinux.0', ldlinux: 'syslinux/ldlinux.c32', config: 'syslinux/syslinux.cfg' },
    dhcp: { bootFile: '/syslinux/lpxelinux.0', configFile: 'syslinux.cfg', pathPrefix: '/syslinux/' },
  },
  'arch-boot-syslinux': {
    // The wiki's era: also the old kernel and initramfs names.
    tree: {
      'arch/boot/x86_64/vmlinuz': 'kernel',
      'arch/boot/x86_64/archiso.img': 'initramfs',
      'arch/x86_64/airootfs.sfs': 'squashfs',
      'arch/boot/syslinux/lpxelinux.0': 'l',
      'arch/boot/syslinux/ldlinux.c32': 'c',
      'arch/boot/syslinux/archiso.cfg': 'cfg',
    },
    files: { lpxelinux: 'arch/boot/syslinux/lpxelinux.0', ldlinux: 'arch/boot/syslinux/ldlinux.c32', config: 'arch/boot/syslinux/archiso.cfg' },
    dhcp: { bootFile: '/arch/boot/syslinux/lpxelinux.0', configFile: 'boot/syslinux/archiso.cfg', pathPrefix: '/arch/' },
  },
} as const;

describe('Arch ISO detection', () => {
  let dir: string;
  before(() => {
    dir = tempDir('archiso');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const [layout, spec] of Object.entries(layouts)) {
    it(`finds the ${layout} layout in an image and in a folder`, async () => {
      const folder = path.join(dir, layout);
      writeTree(folder, spec.tree);
      const iso = xorrisoImage(folder, path.join(dir, `${layout}.iso`), undefined, 'ARCH_202401');
      for (const source of [iso, folder]) {
        const store = await openStore(source);
        try {
          const info = await detectArchiso(store);
          assert.equal(info.detected, true);
          assert.equal(info.layout, layout);
          assert.deepEqual(info.dhcp, spec.dhcp);
          const kernel = layout === 'arch-boot-syslinux' ? 'arch/boot/x86_64/vmlinuz' : 'arch/boot/x86_64/vmlinuz-linux';
          const initramfs = layout === 'arch-boot-syslinux' ? 'arch/boot/x86_64/archiso.img' : 'arch/boot/x86_64/initramfs-linux.img';
          assert.deepEqual(info.files, { ...spec.files, kernel, initramfs, airootfs: 'arch/x86_64/airootfs.sfs' });
          assert.deepEqual(info.missing, []);
          // pxelinux asks for the config relative to the prefix: it must exist there.
          const prefix = info.dhcp!.pathPrefix;
          assert.equal((await store.stat(`${prefix}${info.dhcp!.configFile}`)).isDirectory, false);
          assert.equal((await store.stat(info.dhcp!.bootFile)).isDirectory, false);
        } finally {
          await store.close();
        }
      }
    });
  }

  it('reports what is missing, and no Arch ISO where there is none', async () => {
    const partial = path.join(dir, 'partial');
    writeTree(partial, { 'boot/syslinux/lpxelinux.0': 'l', 'boot/syslinux/syslinux.cfg': 'cfg', 'arch/boot/x86_64/vmlinuz-linux': 'k' });
    const store = await openStore(partial);
    const info = await detectArchiso(store);
    assert.equal(info.detected, false);
    assert.equal(info.layout, 'boot-syslinux');
    assert.deepEqual(info.missing, ['ldlinux', 'initramfs', 'airootfs']);
    const other = path.join(dir, 'other');
    writeTree(other, { 'README.txt': 'hello' });
    const none = await detectArchiso(await openStore(other));
    assert.deepEqual(none, { detected: false, layout: null, files: {}, dhcp: null, missing: [] });
  });

  it('describes an image with its volume label, size and Arch layout', async () => {
    const iso = path.join(dir, 'boot-syslinux.iso');
    const store = await openStore(iso);
    try {
      const d = await describeStore(store);
      assert.equal(d.kind, 'iso');
      assert.equal(d.volumeId, 'ARCH_202401');
      assert.equal(d.size, fs.statSync(iso).size);
      assert.deepEqual(d.rootEntries, ['EFI/', 'arch/', 'boot/']);
      assert.equal(d.archiso.detected, true);
      assert.equal(d.archiso.layout, 'boot-syslinux');
      assert.equal(d.archiso.dhcp?.bootFile, '/boot/syslinux/lpxelinux.0');
    } finally {
      await store.close();
    }
    const folder = await describeStore(await openStore(path.join(dir, 'syslinux')));
    assert.equal(folder.kind, 'folder');
    assert.equal(folder.volumeId, undefined);
    assert.equal(folder.rootEntries, undefined, "a folder's entries are not listed");
    assert.equal(folder.archiso.layout, 'syslinux');
  });
});
