// The three fixture ISOs: their layout and menus (archiso's own files: no DEFAULT, no TIMEOUT in
// the PXE menu, NBD/NFS/HTTP in that order), a CD boot (El Torito -> isolinux -> whichsys -iso- ->
// sys menu, Enter -> kernel -> marker) and PXE boots through QEMU's built-in DHCP/TFTP (iPXE ROM
// -> lpxelinux.0 with the manifest's options 209/210 -> whichsys -pxe- -> the PXE menu, which
// waits -> keys on the serial console pick an entry -> SYSAPPEND 3 -> the initramfs reaches the
// root image from ${pxeserver} over HTTP (busybox httpd), NBD (nbd-server) or NFS (nfs-ganesha)
// -> marker). The reference servers run in private namespaces with the guest.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  bootQemu,
  ensureFixtures,
  fixturePath,
  fixturesDir,
  ganeshaMissing,
  isolatedCommand,
  isolatedHttpCommand,
  isolatedNfsCommand,
  loadManifest,
  pxeEntryIndex,
  type BootResult,
  type FixtureIso,
  type FixtureManifest,
} from '../fixtures/fixtures';
import { plainSerial } from '../lab/qemu';

const haveQemu = spawnSync('qemu-system-x86_64', ['--version']).status === 0;
const isRoot = process.getuid?.() === 0;
const TAGS = ['current', '2021', 'wiki'] as const;
type Tag = (typeof TAGS)[number];
const BOOT_TIMEOUT_MS = 240_000;

function report(name: string, r: BootResult): string {
  return `${name}: ${r.outcome} after ${(r.elapsedMs / 1000).toFixed(1)} s${r.failure ? ` (${r.failure})` : ''}\n--- serial tail ---\n${plainSerial(r.log).slice(-3000)}`;
}

function isoFiles(iso: string): Set<string> {
  const out = execFileSync('xorriso', ['-indev', iso, '-find', '/', '-type', 'f'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return new Set(out.split('\n').filter(Boolean).map((l) => l.replace(/^'|'$/g, '')));
}

function isoRead(iso: string, file: string): Buffer {
  return execFileSync('isoinfo', ['-R', '-i', iso, '-x', file], { maxBuffer: 64 << 20 });
}

/** What each era's releng menu says, written out here (not read from test/fixtures/syslinux). */
const EXPECTED: Record<Tag, { serial: string; ui: string; background: string; labels: string[]; linux: string; initrd: string; append: (uuid: string) => string[] }> = {
  current: {
    serial: 'SERIAL 0 115200',
    ui: 'UI vesamenu.c32',
    background: 'MENU BACKGROUND splash.png',
    labels: ['arch_nbd', 'arch_nfs', 'arch_http'],
    linux: 'LINUX ::/arch/boot/x86_64/vmlinuz-linux',
    initrd: 'INITRD ::/arch/boot/x86_64/initramfs-linux.img',
    append: (uuid) => [
      `APPEND archisobasedir=arch archisosearchuuid=${uuid} archiso_nbd_srv=\${pxeserver} cms_verify=y`,
      'APPEND archisobasedir=arch archiso_nfs_srv=${pxeserver}:/run/archiso/bootmnt cms_verify=y',
      'APPEND archisobasedir=arch archiso_http_srv=http://${pxeserver}/ cms_verify=y',
    ],
  },
  '2021': {
    serial: 'SERIAL 0 115200',
    ui: 'UI vesamenu.c32',
    background: 'MENU BACKGROUND splash.png',
    labels: ['arch64_nbd', 'arch64_nfs', 'arch64_http'],
    linux: 'LINUX ::/arch/boot/x86_64/vmlinuz-linux',
    initrd: 'INITRD ::/arch/boot/intel-ucode.img,::/arch/boot/amd-ucode.img,::/arch/boot/x86_64/initramfs-linux.img',
    append: () => [
      'APPEND archisobasedir=arch archisolabel=ARCH_202611 archiso_nbd_srv=${pxeserver} checksum verify',
      'APPEND archisobasedir=arch archiso_nfs_srv=${pxeserver}:/run/archiso/bootmnt checksum verify',
      'APPEND archisobasedir=arch archiso_http_srv=http://${pxeserver}/ checksum verify',
    ],
  },
  wiki: {
    serial: 'SERIAL 0 38400',
    ui: 'UI boot/syslinux/vesamenu.c32',
    background: 'MENU BACKGROUND boot/syslinux/splash.png',
    labels: ['arch64_nbd', 'arch64_nfs', 'arch64_http'],
    linux: 'LINUX boot/x86_64/vmlinuz',
    initrd: 'INITRD boot/intel_ucode.img,boot/amd_ucode.img,boot/x86_64/archiso.img',
    append: () => [
      'APPEND archisobasedir=arch archisolabel=ARCH_202611 archiso_nbd_srv=${pxeserver}',
      'APPEND archisobasedir=arch archiso_nfs_srv=${pxeserver}:/run/archiso/bootmnt',
      'APPEND archisobasedir=arch archiso_http_srv=http://${pxeserver}/',
    ],
  },
};

/** A menu file with its INCLUDEs inlined (paths as pxelinux resolves them: from option 210). */
function menuChain(iso: string, m: FixtureIso, file: string): string {
  const text = isoRead(iso, file).toString('utf8');
  return text.replace(/^INCLUDE (\S+)$/gm, (_, inc: string) => menuChain(iso, m, path.posix.join(m.dhcp.option210, inc)));
}

let manifest: FixtureManifest;
before(() => {
  manifest = ensureFixtures();
});

describe('fixture ISO layout and menus (archiso releng, unedited)', () => {
  for (const tag of TAGS) {
    it(`${tag}: files where the manifest says, the PXE menu as archiso ships it`, () => {
      const m: FixtureIso = manifest.isos[tag];
      const exp = EXPECTED[tag];
      const iso = fixturePath(m.file);
      const files = isoFiles(iso);
      const sysdir = path.posix.dirname(m.pxelinux);
      const need = [m.pxelinux, m.config, m.eltoritoBoot, m.pxeMenu, m.sysMenu, m.kernel, ...m.initrd, m.airootfs, m.checksum, ...m.signatures];
      for (const mod of ['ldlinux.c32', 'whichsys.c32', 'vesamenu.c32', 'libcom32.c32', 'libutil.c32', 'chain.c32', 'hdt.c32', 'splash.png', 'memdisk']) need.push(`${sysdir}/${mod}`);
      for (const f of need) assert.ok(files.has(f), `${m.file} lacks ${f}`);
      // The config pxelinux reads: option 210 + option 209.
      assert.equal(m.dhcp.option210 + m.dhcp.option209, m.config);

      const blkid = execFileSync('blkid', ['-p', '-o', 'export', iso], { encoding: 'utf8' });
      assert.match(blkid, new RegExp(`^UUID=${m.uuid}$`, 'm'), 'mkarchiso UUID = the ISO 9660 modification date');
      assert.match(blkid, new RegExp(`^LABEL=${m.volid}$`, 'm'));
      const d = execFileSync('isoinfo', ['-d', '-i', iso], { encoding: 'utf8' });
      assert.match(d, /Rock Ridge signatures/);
      assert.match(d, /El Torito/);
      if (tag === 'wiki') {
        assert.match(d, /NO Joliet present/, 'archiso v43 made no Joliet tree');
      } else {
        assert.match(d, /Joliet with UCS level 3/);
        const joliet = execFileSync('isoinfo', ['-J', '-f', '-i', iso], { encoding: 'utf8' });
        assert.ok(joliet.split('\n').includes(m.kernel), `Joliet tree lacks ${m.kernel}`);
      }
      if (tag === 'current') {
        assert.ok(files.has(`/boot/${m.uuid}.uuid`), 'the file archisosearchuuid= falls back to');
        assert.ok(!files.has('/arch/boot/intel-ucode.img'), 'current releases keep microcode inside the initramfs');
      }

      // The PXE menu pxelinux shows: whichsys -pxe- -> archiso_pxe.cfg (+ INCLUDEs).
      assert.match(isoRead(iso, m.config).toString(), /COM32 (boot\/syslinux\/)?whichsys\.c32\nAPPEND -pxe- pxe -sys- sys -iso- sys/);
      const pxeFile = tag === 'wiki' ? '/arch/boot/syslinux/archiso_pxe.cfg' : `${sysdir}/archiso_pxe.cfg`;
      const chain = menuChain(iso, m, pxeFile);
      assert.doesNotMatch(chain, /^\s*(DEFAULT|TIMEOUT|TOTALTIMEOUT|ONTIMEOUT|MENU DEFAULT)\b/im, 'the PXE menu waits for a key');
      assert.ok(chain.includes(`${exp.serial}\n`), exp.serial);
      assert.ok(chain.includes(`${exp.ui}\n`), exp.ui);
      assert.ok(chain.includes(`${exp.background}\n`), exp.background);
      assert.doesNotMatch(chain, /console=|pxe_test_/);
      const labels = [...chain.matchAll(/^LABEL (\S+)$/gm)].map((x) => x[1]);
      assert.deepEqual(labels.slice(0, 3), exp.labels, 'NBD, NFS, HTTP first, in that order');
      assert.deepEqual(m.pxeEntries.map((e) => e.label), exp.labels);
      assert.deepEqual(m.pxeEntries.map((e) => e.method), ['nbd', 'nfs', 'http']);
      const pxe = isoRead(iso, m.pxeMenu).toString();
      assert.deepEqual(pxe.match(/^APPEND .*$/gm)?.slice(0, 3), exp.append(m.uuid));
      assert.equal(pxe.match(/^SYSAPPEND 3$/gm)?.length, 3);
      assert.equal(pxe.match(new RegExp(`^${exp.linux.replace(/[.:/]/g, '\\$&')}$`, 'gm'))?.length, 3, exp.linux);
      assert.equal(pxe.split('\n').filter((l) => l === exp.initrd).length, 3, exp.initrd);
      // The splash image vesamenu loads (relative to option 210), a 640x480 PNG.
      const bg = path.posix.join(m.dhcp.option210, exp.background.split(' ').pop()!);
      const png = isoRead(iso, bg);
      assert.equal(png.subarray(1, 4).toString(), 'PNG');
      assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [640, 480]);
      // No config file on the ISO carries test parameters.
      for (const f of files) if (f.endsWith('.cfg')) assert.doesNotMatch(isoRead(iso, f).toString(), /console=ttyS0|pxe_test_/, f);

      // The initramfs image = the common initramfs + an appended cpio naming the ISO.
      const initramfs = isoRead(iso, m.initrd.at(-1)!);
      const common = fs.readFileSync(fixturePath('initramfs.img'));
      assert.ok(initramfs.subarray(0, common.length).equals(common), 'starts with initramfs.img');
      const rest = initramfs.subarray(common.length).toString('latin1').replace(/^\0+/, '');
      assert.match(rest, /^070701/);
      assert.ok(rest.includes(`etc/pxe-test-iso\0`) && rest.includes(`${tag}\n`), 'appended cpio with /etc/pxe-test-iso');
    });
  }

  it('the signatures on the ISOs verify against the fixtures\' throwaway keys', () => {
    const sfs = fixturePath('airootfs.sfs');
    const keys = path.join(fixturesDir, 'download', 'signing');
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-sig-'));
    try {
      const cms = path.join(work, 'cms.sig');
      fs.writeFileSync(cms, isoRead(fixturePath(manifest.isos.current.file), '/arch/x86_64/airootfs.sfs.cms.sig'));
      const crt = path.join(keys, 'codesign.crt');
      // The check archiso's hook makes (openssl cms -verify ... -nointern -certfile).
      execFileSync('openssl', ['cms', '-verify', '-binary', '-noattr', '-nointern', '-purpose', 'any', '-in', cms, '-content', sfs, '-inform', 'DER', '-out', '/dev/null', '-certfile', crt, '-CAfile', crt], { stdio: 'pipe' });
      const gpgSig = path.join(work, 'airootfs.sfs.sig');
      fs.writeFileSync(gpgSig, isoRead(fixturePath(manifest.isos['2021'].file), '/arch/x86_64/airootfs.sfs.sig'));
      execFileSync('gpg', ['--homedir', path.join(keys, 'gnupg'), '--batch', '--verify', gpgSig, sfs], { stdio: 'pipe' });
      // A flipped byte must not verify.
      const bad = path.join(work, 'bad.sfs');
      const b = fs.readFileSync(sfs);
      b[1000] ^= 1;
      fs.writeFileSync(bad, b);
      assert.throws(() => execFileSync('openssl', ['cms', '-verify', '-binary', '-noattr', '-nointern', '-purpose', 'any', '-in', cms, '-content', bad, '-inform', 'DER', '-out', '/dev/null', '-certfile', crt, '-CAfile', crt], { stdio: 'pipe' }));
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});

describe('fixture ISOs boot from CD in QEMU (sys menu, Enter)', { skip: haveQemu ? false : 'qemu-system-x86_64 missing', concurrency: 2 }, () => {
  for (const tag of TAGS) {
    it(`${tag}: isolinux -> sys menu -> Enter on its first entry -> kernel prints the marker`, async (t) => {
      const m = loadManifest();
      const iso = m.isos[tag];
      assert.equal(iso.sysEntries[0].method, 'iso');
      const r = await bootQemu(['-cdrom', fixturePath(iso.file), '-boot', 'd', '-nic', 'none'], {
        timeoutMs: BOOT_TIMEOUT_MS,
        menu: { index: 0, labels: iso.sysEntries.map((e) => e.menuLabel) },
      });
      t.diagnostic(`menu after ${((r.menu?.menuAfterMs ?? 0) / 1000).toFixed(1)} s, marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
      assert.equal(r.outcome, 'marker', report(tag, r));
      assert.equal(r.marker?.sha256, m.marker.sha256);
      assert.equal(r.marker?.content, m.marker.content);
      assert.equal(r.marker?.method, 'iso');
      assert.equal(r.marker?.iso, iso.markerIso);
      assert.equal(r.marker?.server, '-');
      assert.match(r.log, new RegExp(`pxe-test: method iso.*${tag === 'current' ? `archisosearchuuid=${iso.uuid}` : 'archisolabel=ARCH_202611'}`));
      assert.doesNotMatch(r.log, /console=ttyS0/);
    });
  }
});

describe(
  'fixture ISOs PXE-boot through QEMU user-mode TFTP, entry chosen on the serial console',
  { skip: !haveQemu ? 'qemu-system-x86_64 missing' : !isRoot ? 'needs root (network namespace)' : false, concurrency: 2 },
  () => {
    const roots: string[] = [];
    after(() => {
      for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
    });

    /** The ISO extracted as a TFTP root, with an iPXE script that hands pxelinux 209/210. */
    function tftpRoot(iso: FixtureIso, tag: string): string {
      const root = fs.mkdtempSync(path.join(os.tmpdir(), `pxe-fixture-${tag}-`));
      roots.push(root);
      execFileSync('xorriso', ['-osirrox', 'on', '-indev', fixturePath(iso.file), '-extract', '/', root], { stdio: 'ignore' });
      execFileSync('chmod', ['-R', 'u+w', root]);
      // QEMU's DHCP cannot send options 209/210, so its boot file is an iPXE script for the
      // NIC's iPXE ROM: it sets 209/210 as the manifest says (iPXE hands them to pxelinux in
      // the cached DHCP packet) and chains the ISO's lpxelinux.0.
      fs.writeFileSync(
        path.join(root, 'pxe-test.ipxe'),
        '#!ipxe\n' + `set 209:string ${iso.dhcp.option209}\n` + `set 210:string ${iso.dhcp.option210}\n` + `chain tftp://\${next-server}${iso.dhcp.bootFile}\n`,
      );
      return root;
    }

    async function pxeBoot(tag: Tag, method: 'http' | 'nbd' | 'nfs', command: (root: string) => string[]): Promise<BootResult> {
      const m = loadManifest();
      const iso = m.isos[tag];
      const root = tftpRoot(iso, tag);
      return bootQemu(['-boot', 'n', '-netdev', `user,id=n0,tftp=${root},bootfile=/pxe-test.ipxe`, '-device', 'virtio-net-pci,netdev=n0'], {
        timeoutMs: BOOT_TIMEOUT_MS,
        command: command(root),
        menu: { index: pxeEntryIndex(iso, method), labels: iso.pxeEntries.map((e) => e.menuLabel) },
      });
    }

    function assertMarker(tag: Tag, method: string, r: BootResult): void {
      const m = loadManifest();
      const iso = m.isos[tag];
      const why = report(`${tag} ${method}`, r);
      assert.equal(r.outcome, 'marker', why);
      assert.ok(r.marker, `marker line not parsed: ${JSON.stringify(/PXE-TEST-MARKER[^\n]*/.exec(r.log)?.[0])}\n${why}`);
      assert.equal(r.marker.sha256, m.marker.sha256, why);
      assert.equal(r.marker.content, m.marker.content, why);
      assert.equal(r.marker.method, method, why);
      assert.equal(r.marker.server, '10.0.2.2', "pxeserver = ip='s server field");
      assert.equal(r.marker.iso, iso.markerIso, "the ISO's own initramfs image");
      // pxelinux appended ip= and BOOTIF= (SYSAPPEND 3) to the entry's own APPEND line.
      const append = iso.pxeEntries[pxeEntryIndex(iso, method as 'http')].append;
      assert.ok(plainSerial(r.log).includes(append), `kernel line has ${append}`);
      assert.match(r.log, /ip=10\.0\.2\.15:10\.0\.2\.2:10\.0\.2\.2:255\.255\.255\.0 BOOTIF=01-52-54-00-12-34-56/);
      assert.doesNotMatch(r.log, /console=ttyS0/);
    }

    for (const tag of TAGS) {
      it(`${tag}: pxe menu waits -> Down Down Enter -> HTTP entry prints the marker`, async (t) => {
        // The menu has no TIMEOUT: nothing boots until a key is pressed.
        const r = await pxeBoot(tag, 'http', (root) => isolatedHttpCommand(root));
        t.diagnostic(`menu after ${((r.menu?.menuAfterMs ?? 0) / 1000).toFixed(1)} s (keys ${r.menu?.keys.join(' ')}, retries ${r.menu?.retries}, redraws ${r.menu?.redraws}), marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
        assert.deepEqual(r.menu?.keys.filter((k) => k !== 'ctrlL').slice(-3), ['down', 'down', 'enter']);
        assertMarker(tag, 'http', r);
        // archiso_pxe_http's range probe, then the image and what the menu's checks ask for.
        assert.match(r.log, /range probe of airootfs\.sfs: HTTP 206/);
        if (tag === 'current') assert.match(r.log, /fetched airootfs\.sfs\.cms\.sig/);
        if (tag === '2021') assert.match(r.log, /fetched airootfs\.sha512[\s\S]*fetched airootfs\.sfs\.sig[\s\S]*checksum=y: sha512sum -c/);
      });
    }

    it('current: Enter on the untouched menu -> NBD entry (nbd-server exports the ISO) prints the marker', async (t) => {
      const m = loadManifest();
      if (!m.nbdClient) return t.skip('initramfs built without nbd-client');
      if (!fs.existsSync('/usr/bin/nbd-server')) return t.skip('nbd-server missing');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-fixture-nbd-'));
      roots.push(dir);
      const conf = path.join(dir, 'config');
      fs.writeFileSync(conf, `[generic]\nlistenaddr = 127.0.0.1\nport = 10809\n[archiso]\nexportname = ${fixturePath(m.isos.current.file)}\nreadonly = true\n`);
      const r = await pxeBoot('current', 'nbd', () => isolatedCommand([`/usr/bin/nbd-server -C '${conf}'`]));
      t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
      assert.deepEqual(r.menu?.keys, ['enter'], 'the first entry, as the menu highlights it');
      assertMarker('current', 'nbd', r);
      assert.match(r.log, /copying airootfs\.sfs to RAM/);
    });

    for (const tag of TAGS) {
      it(`${tag}: Down Enter -> NFS entry (nfs-ganesha, klibc nfsmount through the portmapper) prints the marker`, async (t) => {
        const missing = ganeshaMissing();
        if (missing) return t.skip(missing);
        const work = fs.mkdtempSync(path.join(os.tmpdir(), `pxe-fixture-nfs-${tag}-`));
        roots.push(work);
        const r = await pxeBoot(tag, 'nfs', (root) => isolatedNfsCommand(root, work));
        t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
        const glog = path.join(work, 'ganesha.log');
        assertMarker(tag, 'nfs', r);
        assert.ok(r.menu?.keys.filter((k) => k !== 'ctrlL').join(' ').endsWith('down enter'), `keys ${r.menu?.keys}`);
        assert.match(r.log, /pxe-test: nfsmount 10\.0\.2\.2:\/run\/archiso\/bootmnt \/run\/archiso\/bootmnt/);
        assert.match(r.log, /copied \d+ bytes to RAM/, `copytoram over NFS; ganesha log: ${fs.existsSync(glog) ? fs.readFileSync(glog, 'utf8').slice(-1500) : '-'}`);
      });
    }
  },
);
