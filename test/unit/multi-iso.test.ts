/**
 * Several ISOs behind one store: the main ISO at the root and each further ISO under its own path
 * prefix (MountedStore), the generated top menu (pxelinux and iPXE) listing every ISO's entries from
 * the three archiso layouts' real menu files, with each further ISO's kernel, initramfs and kernel
 * parameters pointed at it, and the entry and ISO a client boots reaching the boot events.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { bootChoiceFor } from '../../nodes/lib/boot-events/choices';
import { dhcpSignal } from '../../nodes/lib/boot-events/dhcp-signal';
import { BootTracker } from '../../nodes/lib/boot-events/tracker';
import type { DhcpEvent } from '../../nodes/lib/dhcp/events';
import { BootMenus, TOP_MENU_KEY } from '../../nodes/lib/menus/boot-menus';
import { GENERATED_LABEL, MenuError } from '../../nodes/lib/menus/pxelinux-config';
import { resolveMenuPath } from '../../nodes/lib/menus/syslinux';
import { rebaseAppend, rebaseEntry } from '../../nodes/lib/menus/top-menu';
import { checkPrefix, defaultPrefix, isoMounts, MountedStore } from '../../nodes/lib/store/mounted-store';
import { openConfiguredStore, openStore } from '../../nodes/lib/store/open-store';
import { PublishedFiles } from '../../nodes/lib/store/published-files';
import { isStoreError, type FileStore } from '../../nodes/lib/store/types';
import { ensureFixtures, fixturePath, type FixtureIso } from '../fixtures/fixtures';

type Layout = 'current' | '2021' | 'wiki';
const LAYOUTS: Layout[] = ['current', '2021', 'wiki'];

async function readAll(store: FileStore, p: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await store.createReadStream(p)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The LABEL blocks of a pxelinux config: label → its directives. */
function blocks(cfg: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | undefined;
  for (const line of cfg.split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const kw = m[1]!.toUpperCase();
    if (kw === 'LABEL') out.set(m[2]!, (cur = {}));
    else if (cur && ['LINUX', 'INITRD', 'APPEND', 'SYSAPPEND'].includes(kw)) cur[kw] = m[2]!;
    else if (cur && kw === 'MENU') cur[`MENU ${m[2]!.split(/\s+/)[0]}`] = m[2]!.replace(/^\S+\s*/, '');
  }
  return out;
}

describe('several ISOs behind one store', () => {
  const manifest = ensureFixtures();
  const isoOf = (l: Layout): FixtureIso => manifest.isos[l]!;
  const prefixOf = (l: Layout): string => `arch-${l}`;

  async function openMulti(main: Layout, others: Layout[], published?: string): Promise<FileStore> {
    return openConfiguredStore(fixturePath(isoOf(main).file), undefined, published, others.map((l) => ({ prefix: prefixOf(l), source: fixturePath(isoOf(l).file) })));
  }

  it('serves the main ISO at the root and each further ISO under its prefix, byte for byte', async () => {
    const store = await openMulti('current', ['2021', 'wiki']);
    const plain2021 = await openStore(fixturePath(isoOf('2021').file));
    try {
      assert.deepEqual(isoMounts(store).map((m) => m.prefix), ['arch-2021', 'arch-wiki']);
      const root = (await store.list('/')).map((e) => e.name);
      for (const name of ['arch', 'boot', 'arch-2021', 'arch-wiki']) assert.ok(root.includes(name), `${name} in ${root.join(' ')}`);
      assert.equal((await store.stat('/arch-2021')).isDirectory, true);
      // The 2021 layout keeps its loader in /syslinux/; the main (current) ISO has none there.
      const loader = 'syslinux/lpxelinux.0';
      await assert.rejects(store.stat(loader), (e: unknown) => isStoreError(e, 'ENOENT'));
      const st = await store.stat(`/arch-2021/${loader}`);
      assert.equal(st.path, `arch-2021/${loader}`);
      assert.deepEqual(await readAll(store, `arch-2021//${loader}`), await readAll(plain2021, loader));
      const f = await store.open('arch-2021/arch/x86_64/airootfs.sfs');
      const buf = Buffer.alloc(16);
      assert.equal(await f.read(buf, 0, 16, 0), 16);
      await f.close();
      assert.equal((await store.list('arch-wiki/arch/boot/syslinux')).some((e) => e.name === 'archiso_pxe.cfg'), true);
      // '..' out of a prefix lands in the main ISO, never above the root.
      assert.equal((await store.stat('arch-2021/../boot/syslinux/lpxelinux.0')).path, 'boot/syslinux/lpxelinux.0');
      await assert.rejects(store.stat('arch-2021/../../etc/passwd'), (e: unknown) => isStoreError(e, 'EINVAL'));
    } finally {
      await store.close();
      await plain2021.close();
    }
  });

  it('refuses prefixes that are not one plain name, that hide the main ISO, or that repeat', async () => {
    for (const bad of ['', 'a/b', '..', '.hidden', 'arch', 'Boot', 'pxe-flow', 'x'.repeat(65), 'a b']) assert.throws(() => checkPrefix(bad), (e: unknown) => isStoreError(e, 'EINVAL'), bad);
    assert.equal(checkPrefix('/arch-2021/'), 'arch-2021');
    assert.equal(defaultPrefix('/srv/iso/archlinux-2026.11.01-x86_64.iso'), 'archlinux-2026.11.01-x86_64');
    assert.equal(defaultPrefix('/srv/my iso/Arch Linux (old).ISO'), 'Arch-Linux-old-');
    const a = await openStore(fixturePath(isoOf('2021').file));
    const b = await openStore(fixturePath(isoOf('wiki').file));
    try {
      assert.throws(() => new MountedStore(a, [{ prefix: 'x', store: b }, { prefix: 'x', store: b }]), /same prefix/);
    } finally {
      await a.close();
      await b.close();
    }
    // A bad prefix closes what was opened and says why.
    await assert.rejects(openConfiguredStore(fixturePath(isoOf('current').file), undefined, undefined, [{ prefix: 'boot', source: fixturePath(isoOf('wiki').file) }]), /hide the main ISO/);
  });

  it('points a further ISO\'s kernel parameters at it: HTTP root, NFS export, NBD export; archisobasedir as the ISO has it', () => {
    const place = { prefix: 'arch-2021', nbdExport: 'arch-2021' };
    assert.equal(rebaseAppend('archisobasedir=arch archiso_http_srv=http://${pxeserver}/ cms_verify=y', place), 'archisobasedir=arch archiso_http_srv=http://${pxeserver}/arch-2021/ cms_verify=y');
    assert.equal(rebaseAppend('archiso_http_srv=http://${pxeserver}:8080/pxe', place), 'archiso_http_srv=http://${pxeserver}:8080/pxe/arch-2021/');
    assert.equal(rebaseAppend('archisobasedir=arch archiso_nfs_srv=${pxeserver}:/run/archiso/bootmnt/ checksum', place), 'archisobasedir=arch archiso_nfs_srv=${pxeserver}:/run/archiso/bootmnt/arch-2021 checksum');
    assert.equal(rebaseAppend('archisobasedir=arch archisolabel=ARCH_202611 archiso_nbd_srv=${pxeserver}', place), 'archisobasedir=arch archisolabel=ARCH_202611 archiso_nbd_srv=${pxeserver} archiso_nbd_name=arch-2021');
    assert.equal(rebaseAppend('archiso_nbd_name=archiso archiso_nbd_srv=${pxeserver}', place), 'archiso_nbd_name=arch-2021 archiso_nbd_srv=${pxeserver}');
    assert.equal(rebaseAppend('quiet  copytoram', place), 'quiet copytoram', 'other parameters untouched');
    const e = rebaseEntry({ label: 'arch64_nfs', title: 'NFS', kernel: 'boot/x86_64/vmlinuz', initrd: 'boot/intel_ucode.img, boot/x86_64/archiso.img', append: '', hidden: false, file: 'x' }, '/arch/', { prefix: 'old', nbdExport: 'old' }, 'ARCH_201910 /old/');
    assert.equal(e.label, 'old/arch64_nfs');
    assert.equal(e.title, 'ARCH_201910 /old/: NFS');
    assert.equal(e.kernel, '::/old/arch/boot/x86_64/vmlinuz');
    assert.equal(e.initrd, '::/old/arch/boot/intel_ucode.img,::/old/arch/boot/x86_64/archiso.img');
  });

  for (const main of LAYOUTS) {
    const others = LAYOUTS.filter((l) => l !== main);
    it(`top menu, ${main} ISO at the root with ${others.join(' and ')} under prefixes: every ISO's entries, each pointing at its own ISO`, async () => {
      const store = await openMulti(main, others);
      try {
        const menus = await BootMenus.load(store);
        assert.equal(menus.multi, true);
        assert.deepEqual(menus.skipped, []);
        assert.deepEqual(
          menus.isos.map((i) => [i.prefix, i.name]),
          [['', isoOf(main).file], ...others.map((l) => [prefixOf(l), isoOf(l).file])],
        );
        const cfg = menus.pxelinux({ choice: { mode: 'menu' } });
        // The main ISO's menu head gives the look (UI module, serial console), resolved as pxelinux would.
        const include = /^INCLUDE (\S+)$/m.exec(cfg)?.[1];
        assert.ok(include, cfg);
        assert.match(resolveMenuPath(include, menus.workDir), /_head\.cfg$/);
        assert.equal((await store.stat(resolveMenuPath(include, menus.workDir))).isDirectory, false);
        const labels = blocks(cfg);
        for (const layout of [main, ...others]) {
          const iso = isoOf(layout);
          const prefix = layout === main ? '' : prefixOf(layout);
          for (const want of iso.pxeEntries) {
            const label = prefix ? `${prefix}/${want.label}` : want.label;
            const b = labels.get(label);
            assert.ok(b, `${label} in the top menu:\n${cfg}`);
            assert.ok(menus.choices.some((c) => c.label === label), `${label} offered to the editor`);
            assert.equal(b.SYSAPPEND, '3');
            assert.ok(b['MENU LABEL']!.includes(want.menuLabel), `${b['MENU LABEL']} names the ISO's entry`);
            assert.ok(b['MENU LABEL']!.startsWith(iso.volid), 'menu text starts with the volume label');
            // Kernel and initramfs: the files of that ISO (under its prefix), found in the store.
            const kernel = resolveMenuPath(b.LINUX!, menus.workDir);
            assert.equal(kernel, `${prefix ? `${prefix}/` : ''}${iso.kernel.slice(1)}`);
            const initrds = b.INITRD!.split(',').map((p) => resolveMenuPath(p, menus.workDir));
            assert.deepEqual(initrds, iso.initrd.map((p) => `${prefix ? `${prefix}/` : ''}${p.slice(1)}`));
            for (const p of [kernel, ...initrds]) assert.equal((await store.stat(p)).isDirectory, false, p);
            const append = b.APPEND!;
            assert.match(append, /(^| )archisobasedir=arch( |$)/, 'archisobasedir is a path inside the ISO');
            if (!prefix) assert.equal(append, want.append, "the main ISO's parameters are its own");
            else if (want.method === 'http') assert.match(append, new RegExp(`archiso_http_srv=http://\\$\\{pxeserver\\}/${prefix}/( |$)`));
            else if (want.method === 'nfs') assert.match(append, new RegExp(`archiso_nfs_srv=\\$\\{pxeserver\\}:/run/archiso/bootmnt/${prefix}( |$)`));
            else assert.match(append, new RegExp(`archiso_nbd_srv=\\$\\{pxeserver\\} .*archiso_nbd_name=${prefix}( |$)`));
            // The root image the entry ends up reading is that ISO's.
            if (prefix && want.method !== 'nbd') assert.equal((await store.stat(`${prefix}/${iso.airootfs.slice(1)}`)).size > 0, true);
          }
        }
        assert.doesNotMatch(cfg, /^(DEFAULT|TIMEOUT|PROMPT)/m, 'the plain top menu waits, like the ISOs\' own');
      } finally {
        await store.close();
      }
    });
  }

  it('boots "ISO X entry Y" unattended: at once, after a timeout, and refuses an entry that is not there', async () => {
    const store = await openMulti('current', ['2021', 'wiki']);
    try {
      const menus = await BootMenus.load(store);
      const now = menus.pxelinux({ choice: { mode: 'now', entry: 'arch-wiki/arch64_http' }, extraArgs: 'console=ttyS0' });
      const b = blocks(now).get(GENERATED_LABEL)!;
      assert.match(now, new RegExp(`^DEFAULT ${GENERATED_LABEL}$`, 'm'));
      assert.equal(b.LINUX, '::/arch-wiki/arch/boot/x86_64/vmlinuz');
      assert.equal(b.APPEND, 'archisobasedir=arch archiso_http_srv=http://${pxeserver}/arch-wiki/ console=ttyS0');
      assert.doesNotMatch(now, /^INCLUDE/m, 'no menu at all');

      const timed = menus.pxelinux({ choice: { mode: 'timeout', entry: 'arch-2021/arch64_nfs', seconds: 3 } });
      assert.match(timed, /^DEFAULT arch-2021\/arch64_nfs$/m);
      assert.match(timed, /^TIMEOUT 30$/m);
      assert.ok(blocks(timed).has('arch-wiki/arch64_nbd'), 'the whole top menu is shown meanwhile');
      assert.match(blocks(timed).get(GENERATED_LABEL)!.APPEND!, /archiso_nfs_srv=\$\{pxeserver\}:\/run\/archiso\/bootmnt\/arch-2021 /);
      // The main ISO's entries keep their own names.
      assert.equal(blocks(menus.pxelinux({ choice: { mode: 'now', entry: 'arch_nbd' } })).get(GENERATED_LABEL)!.LINUX, '::/arch/boot/x86_64/vmlinuz-linux');
      assert.throws(() => menus.pxelinux({ choice: { mode: 'now', entry: 'arch-2021/nope' } }), (e: unknown) => e instanceof MenuError && e.code === 'NO_ENTRY' && /arch-wiki\/arch64_http/.test(e.message));
    } finally {
      await store.close();
    }
  });

  it('the iPXE script (UEFI) lists every ISO and loads a further ISO\'s files from under its prefix', async () => {
    const store = await openMulti('current', ['2021']);
    try {
      const menus = await BootMenus.load(store);
      const script = menus.ipxe({ choice: { mode: 'timeout', entry: 'arch-2021/arch64_http', seconds: 4 } }, 'http://10.9.8.7:8080/pxe/', '10.9.8.7');
      assert.match(script, /^item e_arch_nbd /m);
      assert.match(script, /^item e_arch-2021_arch64_nfs ARCH_202611 \/arch-2021\/: /m);
      assert.match(script, /^choose --default e_arch-2021_arch64_http --timeout 4000 /m);
      assert.match(script, /^kernel http:\/\/10\.9\.8\.7:8080\/pxe\/arch-2021\/arch\/boot\/x86_64\/vmlinuz-linux .*archiso_http_srv=http:\/\/10\.9\.8\.7:8080\/pxe\/arch-2021\/ /m);
      assert.match(script, /^initrd http:\/\/10\.9\.8\.7:8080\/pxe\/arch-2021\/arch\/boot\/x86_64\/initramfs-linux\.img$/m);
      assert.match(script, /archiso_nfs_srv=10\.9\.8\.7:\/run\/archiso\/bootmnt\/arch-2021 /);
      assert.match(script, /archiso_nbd_srv=10\.9\.8\.7 .*archiso_nbd_name=arch-2021 /);
    } finally {
      await store.close();
    }
  });

  it('publishes the top menu and the choices; a DHCP answer naming a chosen config says which entry and ISO, and the boot events carry them', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-multi-'));
    const store = await openMulti('current', ['2021'], folder);
    try {
      const menus = await BootMenus.load(store);
      const published = await new PublishedFiles(folder).init();
      const top = await menus.publishPxelinux(published, TOP_MENU_KEY, { choice: { mode: 'menu' } });
      assert.equal(top, 'pxe-flow/menu.cfg', 'several ISOs: the plain menu is the generated one');
      assert.match((await readAll(store, `${menus.workDir}${top}`)).toString(), /^LABEL arch-2021\/arch64_nfs$/m);
      assert.equal(bootChoiceFor(menus.workDir, top), undefined, 'a menu chooses nothing');

      const name = await menus.publishPxelinux(published, 'rule-2', { choice: { mode: 'now', entry: 'arch-2021/arch64_nfs' } });
      assert.deepEqual(bootChoiceFor(menus.workDir, name), { entry: 'arch64_nfs', iso: isoOf('2021').file });
      const mac = '52:54:00:aa:bb:01';
      const ev = { type: 'ack', mac, ip: '10.9.0.50', archName: 'x86 BIOS', bootFile: 'boot/syslinux/lpxelinux.0', configFile: name, pathPrefix: menus.workDir, userClass: [] } as unknown as DhcpEvent;
      const signal = dhcpSignal(ev, 'full', 1);
      assert.equal(signal.entry, 'arch64_nfs');
      assert.equal(signal.iso, isoOf('2021').file);
      // A rule changed back to the plain menu forgets its choice.
      await menus.publishPxelinux(published, 'rule-2', { choice: { mode: 'timeout', entry: 'arch_http', seconds: 5 } });
      assert.deepEqual(bootChoiceFor(menus.workDir, name), { entry: 'arch_http', iso: isoOf('current').file });
      await menus.publishPxelinux(published, 'rule-2', { choice: { mode: 'menu' } });
      assert.equal(bootChoiceFor(menus.workDir, name), undefined);

      const t = new BootTracker({ stallAfterMs: 60000, rootfsStep: 25 });
      const events = [
        ...t.handle(signal),
        ...t.handle({ source: 'tftp', kind: 'done', ip: '10.9.0.50', file: 'boot/syslinux/lpxelinux.0', bytes: 1, size: 1, at: 2, store: isoOf('current').file }),
        ...t.handle({ source: 'tftp', kind: 'done', ip: '10.9.0.50', file: 'arch-2021/arch/boot/x86_64/vmlinuz-linux', bytes: 1, size: 1, at: 3, store: isoOf('2021').file }),
      ];
      const kernel = events.find((e) => e.stage === 'kernel')!;
      assert.equal(kernel.entry, 'arch64_nfs');
      assert.equal(kernel.iso, isoOf('2021').file, 'the ISO the kernel came from');
      assert.equal(events.find((e) => e.stage === 'dhcp')!.iso, isoOf('2021').file, 'known from the choice before any file');
    } finally {
      await store.close();
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });

  it('a one-ISO store is unchanged: its own menu, no top menu, no rewriting', async () => {
    const store = await openConfiguredStore(fixturePath(isoOf('wiki').file));
    try {
      const menus = await BootMenus.load(store);
      assert.equal(menus.multi, false);
      assert.equal(menus.isos.length, 1);
      assert.match(menus.pxelinux({ choice: { mode: 'menu' } }), /^INCLUDE boot\/syslinux\/archiso_pxe\.cfg$/m);
      assert.deepEqual(menus.choices.slice(0, 3).map((c) => c.label), isoOf('wiki').pxeEntries.map((e) => e.label));
    } finally {
      await store.close();
    }
  });
});
