/**
 * Boot menus from the ISO's own files: the entries of the three archiso layouts' real PXE menus
 * (the fixtures are archiso's releng files: no TIMEOUT, NBD first), and the pxelinux configs that
 * boot one of them after a timeout or at once, with extra kernel parameters.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { detectArchiso } from '../../nodes/lib/store/archiso';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { BootMenus } from '../../nodes/lib/menus/boot-menus';
import { HttpFileService } from '../../nodes/lib/http/serve-file';
import { HttpListener } from '../../nodes/lib/http/server';
import { openStore } from '../../nodes/lib/store/open-store';
import { openConfiguredStore } from '../../nodes/lib/store/open-store';
import { PublishedFiles } from '../../nodes/lib/store/published-files';
import { ipxeMenuScript } from '../../nodes/lib/menus/ipxe-menu';
import { GENERATED_LABEL, MenuError, pxelinuxConfig } from '../../nodes/lib/menus/pxelinux-config';
import { linuxEntries, MENU_LIMITS, readMenu, resolveMenuPath, type ReadText } from '../../nodes/lib/menus/syslinux';
import { ensureFixtures, fixturePath } from '../fixtures/fixtures';

const memRead =
  (files: Record<string, string>): ReadText =>
  async (p) =>
    files[p] ?? null;

describe('syslinux menus', () => {
  const manifest = ensureFixtures();
  for (const [name, iso] of Object.entries(manifest.isos)) {
    it(`${name}: the ISO's PXE menu lists NBD, NFS, HTTP in that order, and configs built from it read back`, async () => {
      const store = await openStore(fixturePath(iso.file));
      try {
        const info = await detectArchiso(store);
        const read: ReadText = async (p) => {
          const chunks: Buffer[] = [];
          for await (const c of await store.createReadStream(p)) chunks.push(c as Buffer);
          return Buffer.concat(chunks).toString('utf8');
        };
        const dir = info.files.config!.slice(0, info.files.config!.lastIndexOf('/'));
        const menuPath = `${dir}/archiso_pxe.cfg`;
        const menu = await readMenu(read, menuPath, info.dhcp!.pathPrefix);
        assert.deepEqual(menu.skipped, []);
        assert.ok(menu.files.length >= 3, menu.files.join());
        const entries = linuxEntries(menu);
        const [nbd, nfs, http] = entries;
        assert.match(nbd!.append, /archiso_nbd_srv=\$\{pxeserver\}/);
        assert.match(nfs!.append, /archiso_nfs_srv=\$\{pxeserver\}:\/run\/archiso\/bootmnt/);
        assert.match(http!.append, /archiso_http_srv=http:\/\/\$\{pxeserver\}\//);
        for (const e of [nbd!, nfs!, http!]) {
          assert.equal(e.sysappend, 3);
          assert.match(e.title, /NBD|NFS|HTTP/);
          // Every kernel the menu names is in the store, resolved as pxelinux resolves it.
          assert.equal((await store.stat(resolveMenuPath(e.kernel!, info.dhcp!.pathPrefix))).isDirectory, false, e.kernel);
        }

        // Boot NFS after 5 s: the ISO's menu, included untouched, plus a hidden copy with the extras.
        const timed = pxelinuxConfig({ menuPath, workDir: info.dhcp!.pathPrefix, entries: menu.entries, choice: { mode: 'timeout', entry: nfs!.label, seconds: 5 }, extraArgs: 'script=http://10.0.0.1/install.sh' });
        assert.match(timed, /^TIMEOUT 50$/m);
        assert.match(timed, new RegExp(`^ONTIMEOUT ${GENERATED_LABEL}$`, 'm'));
        assert.match(timed, new RegExp(`^DEFAULT ${nfs!.label}$`, 'm'));
        const files = { 'gen/x.cfg': timed };
        const reread = await readMenu(async (p) => (p in files ? files[p as keyof typeof files] : read(p)), 'gen/x.cfg', info.dhcp!.pathPrefix);
        assert.deepEqual(reread.entries.slice(0, menu.entries.length), menu.entries.map((e) => ({ ...e })), 'the ISO menu comes through the INCLUDE as it is');
        const ours = reread.entries.find((e) => e.label === GENERATED_LABEL)!;
        assert.equal(ours.hidden, true);
        assert.equal(ours.kernel, nfs!.kernel);
        assert.equal(ours.initrd, nfs!.initrd);
        assert.equal(ours.append, `${nfs!.append} script=http://10.0.0.1/install.sh`);

        // HTTP at once: no menu (no INCLUDE, no UI), one entry.
        const now = pxelinuxConfig({ menuPath, workDir: info.dhcp!.pathPrefix, entries: menu.entries, choice: { mode: 'now', entry: http!.label } });
        assert.doesNotMatch(now, /^(INCLUDE|UI)\b/im);
        assert.match(now, /^PROMPT 0$/m);
        const one = await readMenu(memRead({ 'gen/now.cfg': now }), 'gen/now.cfg', info.dhcp!.pathPrefix);
        assert.deepEqual(one.entries.map((e) => [e.label, e.append]), [[GENERATED_LABEL, http!.append]]);

        // UEFI through iPXE: the same entries in the same order, served over HTTP, our server named outright.
        const ipxe = ipxeMenuScript({ entries: menu.entries, workDir: info.dhcp!.pathPrefix, baseUrl: 'http://10.0.0.1:8080/', server: '10.0.0.1', title: 'Arch Linux', choice: { mode: 'timeout', entry: nfs!.label, seconds: 5 }, extraArgs: 'console=ttyS0' });
        assert.deepEqual([...ipxe.matchAll(/^item (\S+)/gm)].map((m) => m[1]), [nbd!, nfs!, http!].map((e) => `e_${e.label}`), 'memtest (no initrd) is not offered');
        assert.match(ipxe, new RegExp(`^choose --default e_${nfs!.label} --timeout 5000 target`, 'm'));
        assert.doesNotMatch(ipxe, /\$\{pxeserver\}/);
        assert.match(ipxe, /archiso_nfs_srv=10\.0\.0\.1:\/run\/archiso\/bootmnt/);
        assert.match(ipxe, /archiso_nbd_srv=10\.0\.0\.1\b/);
        assert.match(ipxe, /archiso_http_srv=http:\/\/10\.0\.0\.1:8080\/ /, 'the HTTP entry fetches from where we serve');
        const kernels = [...ipxe.matchAll(/^kernel http:\/\/10\.0\.0\.1:8080\/(\S+) (.*)$/gm)];
        assert.equal(kernels.length, 3);
        for (const [, kpath, args] of kernels) {
          assert.equal((await store.stat(kpath!)).isDirectory, false, kpath);
          assert.match(args!, /\bip=dhcp\b/);
          assert.equal(/console=ttyS0/.test(args!), args!.includes('archiso_nfs_srv'), 'extra parameters on the chosen entry only');
        }
        for (const [, ipath] of ipxe.matchAll(/^initrd http:\/\/10\.0\.0\.1:8080\/(\S+)$/gm)) assert.equal((await store.stat(ipath!)).isDirectory, false, ipath);
        const ipxeNow = ipxeMenuScript({ entries: menu.entries, workDir: info.dhcp!.pathPrefix, baseUrl: 'http://10.0.0.1/', server: '10.0.0.1', title: 'x', choice: { mode: 'now', entry: http!.label } });
        assert.doesNotMatch(ipxeNow, /^(menu|choose)\b/m);
        assert.equal([...ipxeNow.matchAll(/^kernel /gm)].length, 1);
        assert.match(ipxeNow, /archiso_http_srv=http:\/\/10\.0\.0\.1\//);

        // The plain menu is only an INCLUDE of the ISO's PXE menu, named from the working directory.
        const plain = pxelinuxConfig({ menuPath, workDir: info.dhcp!.pathPrefix, entries: menu.entries, choice: { mode: 'menu' } });
        const inc = /^INCLUDE (\S+)$/m.exec(plain)![1]!;
        assert.equal(resolveMenuPath(inc, info.dhcp!.pathPrefix), menuPath);
      } finally {
        await store.close();
      }
    });
  }

  it('parse as pxelinux does: TEXT HELP blocks skipped, keywords in any case, MENU HIDE, IPAPPEND', async () => {
    const menu = await readMenu(
      memRead({
        'cfg/a.cfg': ['label one', 'text help', 'LABEL not-an-entry', 'endtext', '  menu label ^One', '  kernel k1', '  initrd i1', '  append a=1', '  ipappend 2', 'LABEL two', 'MENU HIDE', 'LINUX k2', 'LABEL menu', 'COM32 vesamenu.c32'].join('\r\n'),
      }),
      '/cfg/a.cfg',
      '/cfg/',
    );
    assert.deepEqual(
      menu.entries.map((e) => [e.label, e.title, e.kernel, e.initrd, e.append, e.sysappend, e.hidden]),
      [
        ['one', 'One', 'k1', 'i1', 'a=1', 2, false],
        ['two', '', 'k2', undefined, '', undefined, true],
        ['menu', '', undefined, undefined, '', undefined, false],
      ],
    );
    assert.deepEqual(linuxEntries(menu).map((e) => e.label), ['one']);
  });

  it('stop at the limits: an INCLUDE loop, a missing or oversized file, too many entries', async () => {
    const loop = await readMenu(memRead({ 'a.cfg': 'INCLUDE a.cfg\nLABEL x\nLINUX k' }), 'a.cfg', '/');
    assert.equal(loop.files.length, MENU_LIMITS.depth + 1);
    assert.equal(loop.entries.length, MENU_LIMITS.depth + 1);
    const missing = await readMenu(memRead({ 'a.cfg': 'INCLUDE nothere.cfg\nINCLUDE big.cfg\nLABEL x\nLINUX k', 'big.cfg': 'x'.repeat(MENU_LIMITS.bytesPerFile + 1) }), 'a.cfg', '/');
    assert.deepEqual(missing.skipped, ['nothere.cfg', 'big.cfg']);
    assert.equal(missing.entries.length, 1);
    const many = await readMenu(memRead({ 'a.cfg': Array.from({ length: 1000 }, (_, i) => `LABEL e${i}\nLINUX k`).join('\n') }), 'a.cfg', '/');
    assert.equal(many.entries.length, MENU_LIMITS.entries);
  });

  it('resolve names as pxelinux does: "::" and "/" from the root, the rest from the working directory', () => {
    assert.equal(resolveMenuPath('::/arch/boot/x86_64/vmlinuz-linux', '/boot/syslinux/'), 'arch/boot/x86_64/vmlinuz-linux');
    assert.equal(resolveMenuPath('archiso_head.cfg', '/boot/syslinux/'), 'boot/syslinux/archiso_head.cfg');
    assert.equal(resolveMenuPath('boot/x86_64/vmlinuz', '/arch/'), 'arch/boot/x86_64/vmlinuz');
    assert.equal(resolveMenuPath('../../../etc/passwd', '/arch/'), 'etc/passwd');
  });

  it('refuse what would break the config or the boot: an unknown entry, line breaks in parameters, a bad timeout', () => {
    const entries = [{ label: 'a', title: 'A', kernel: 'k', append: '', hidden: false, file: 'x' }];
    const base = { menuPath: 'm.cfg', workDir: '/', entries };
    assert.throws(() => pxelinuxConfig({ ...base, choice: { mode: 'now', entry: 'b' } }), (e: unknown) => e instanceof MenuError && e.code === 'NO_ENTRY' && /has: a/.test(e.message));
    assert.throws(() => pxelinuxConfig({ ...base, choice: { mode: 'now', entry: 'a' }, extraArgs: 'x=1\nLABEL evil' }), (e: unknown) => e instanceof MenuError && e.code === 'BAD_ARGS');
    assert.throws(() => pxelinuxConfig({ ...base, choice: { mode: 'now', entry: 'a' }, extraArgs: 'x'.repeat(2000) }), (e: unknown) => e instanceof MenuError && e.code === 'BAD_ARGS');
    assert.throws(() => pxelinuxConfig({ ...base, choice: { mode: 'timeout', entry: 'a', seconds: 0 } }), (e: unknown) => e instanceof MenuError && e.code === 'BAD_TIMEOUT');
    assert.match(pxelinuxConfig({ ...base, choice: { mode: 'now', entry: 'a' }, extraArgs: '  copytoram  ' }), /^APPEND copytoram$/m);
  });

  it('BootMenus: lists the entries, and publishes a config that the store then serves at the path option 209 names', async () => {
    const iso = Object.values(ensureFixtures().isos)[0]!;
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-menus-'));
    const store = await openConfiguredStore(fixturePath(iso.file), undefined, folder);
    try {
      const menus = await BootMenus.load(store);
      const labels = menus.choices.map((c) => c.label);
      assert.deepEqual(labels.slice(0, 3).map((l) => l.replace(/^arch(64)?_/, '')), ['nbd', 'nfs', 'http']);
      const published = await new PublishedFiles(folder).init();
      assert.equal(await menus.publishPxelinux(published, 'rule-1', { choice: { mode: 'menu' } }), menus.info.dhcp!.configFile, 'the plain menu is the ISO\'s own config');
      const name = await menus.publishPxelinux(published, '52:54:00:12:34:56', { choice: { mode: 'now', entry: labels[1]! }, extraArgs: 'copytoram' });
      assert.equal(name, 'pxe-flow/52_54_00_12_34_56.cfg');
      const served = await store.stat(`${menus.workDir}${name}`);
      assert.equal(served.isDirectory, false);
      await assert.rejects(menus.publishPxelinux(published, 'x', { choice: { mode: 'now', entry: 'nope' } }), /no entry "nope"/);
    } finally {
      await store.close();
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });

  it("the HTTP node's iPXE script offers the ISO's menu to UEFI clients when asked, with our host as the NBD/NFS server", async () => {
    const iso = ensureFixtures().isos.current!;
    const store = await openStore(fixturePath(iso.file));
    const service = new HttpFileService({ store, ipxeMenu: { mode: 'timeout', entry: 'arch_nfs', seconds: 5 }, kernelArgs: 'console=ttyS0' });
    const listener = new HttpListener(service.handle);
    const { port } = await listener.listen({ address: '127.0.0.1', port: 0 });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/boot.ipxe', headers: { host: '10.9.8.7:8080' } }, (res) => {
          let b = '';
          res.setEncoding('utf8').on('data', (d: string) => (b += d)).on('end', () => resolve(b));
        }).on('error', reject);
      });
      assert.match(body, /^#!ipxe/);
      assert.match(body, /^choose --default e_arch_nfs --timeout 5000 /m);
      assert.match(body, /archiso_nfs_srv=10\.9\.8\.7:\/run\/archiso\/bootmnt .*console=ttyS0/);
      assert.match(body, /archiso_nbd_srv=10\.9\.8\.7 /);
      assert.match(body, /^kernel http:\/\/10\.9\.8\.7:8080\/arch\/boot\/x86_64\/vmlinuz-linux /m);
    } finally {
      await service.close();
      await listener.close();
      await store.close();
    }
  });
});
