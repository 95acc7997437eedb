// The three fixture ISOs: their layout (xorriso/isoinfo), a CD boot (El Torito -> isolinux ->
// whichsys -iso- -> sys menu -> kernel -> marker) and a PXE boot through QEMU's built-in DHCP +
// TFTP (iPXE ROM -> lpxelinux.0 with the manifest's options 209/210 -> whichsys -pxe- -> HTTP
// entry with SYSAPPEND 3 -> kernel fetches airootfs.sfs from http://${pxeserver}/ -> marker).
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
  isolatedHttpCommand,
  loadManifest,
  type BootResult,
  type FixtureIso,
  type FixtureManifest,
} from '../fixtures/fixtures';

const haveQemu = spawnSync('qemu-system-x86_64', ['--version']).status === 0;
const isRoot = process.getuid?.() === 0;
const TAGS = ['current', '2021', 'wiki'] as const;
const BOOT_TIMEOUT_MS = 180_000;

function report(name: string, r: BootResult): string {
  const plain = r.log.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ''); // eslint-disable-line no-control-regex
  return `${name}: ${r.outcome} after ${(r.elapsedMs / 1000).toFixed(1)} s${r.failure ? ` (${r.failure})` : ''}\n--- serial tail ---\n${plain.slice(-3000)}`;
}

function isoFiles(iso: string): Set<string> {
  const out = execFileSync('xorriso', ['-indev', iso, '-find', '/', '-type', 'f'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return new Set(out.split('\n').filter(Boolean).map((l) => l.replace(/^'|'$/g, '')));
}

function isoRead(iso: string, file: string): string {
  return execFileSync('isoinfo', ['-R', '-i', iso, '-x', file], { encoding: 'utf8' });
}

let manifest: FixtureManifest;
before(() => {
  manifest = ensureFixtures();
});

describe('fixture ISO layout', () => {
  for (const tag of TAGS) {
    it(`${tag}: files where the manifest says, Rock Ridge + Joliet + El Torito`, () => {
      const m: FixtureIso = manifest.isos[tag];
      const iso = fixturePath(m.file);
      const files = isoFiles(iso);
      const sysdir = path.posix.dirname(m.pxelinux);
      const need = [m.pxelinux, m.config, m.eltoritoBoot, m.kernel, ...m.initrd, m.airootfs, `/arch/x86_64/airootfs.sha512`];
      for (const mod of ['ldlinux.c32', 'whichsys.c32', 'menu.c32', 'vesamenu.c32', 'libcom32.c32', 'libutil.c32', 'chain.c32']) need.push(`${sysdir}/${mod}`);
      for (const f of need) assert.ok(files.has(f), `${m.file} lacks ${f}`);
      // The config pxelinux reads: option 210 + option 209.
      assert.equal(m.dhcp.option210 + m.dhcp.option209, m.config);

      const d = execFileSync('isoinfo', ['-d', '-i', iso], { encoding: 'utf8' });
      assert.match(d, /Volume id: ARCH_202611/);
      assert.match(d, /Rock Ridge signatures/);
      assert.match(d, /Joliet with UCS level 3/);
      assert.match(d, /El Torito/);
      // Joliet names as a Windows client would see them.
      const joliet = execFileSync('isoinfo', ['-J', '-f', '-i', iso], { encoding: 'utf8' });
      assert.ok(joliet.split('\n').includes(m.kernel), `Joliet tree lacks ${m.kernel}`);

      // The PXE menu: HTTP is the default, every entry appends ip=/BOOTIF= (SYSAPPEND 3).
      const pxeCfg = tag === 'wiki' ? '/arch/boot/syslinux/archiso_pxe.cfg' : `${sysdir}/archiso_pxe-linux.cfg`;
      const cfg = isoRead(iso, pxeCfg);
      assert.match(cfg, /^DEFAULT arch64_http$/m);
      assert.equal(cfg.match(/^SYSAPPEND 3$/gm)?.length, 3);
      assert.match(cfg, /archiso_http_srv=http:\/\/\$\{pxeserver\}\//);
      assert.match(cfg, /archiso_nbd_srv=\$\{pxeserver\}/);
      assert.match(cfg, /archiso_nfs_srv=\$\{pxeserver\}:\/run\/archiso\/bootmnt/);
      assert.match(isoRead(iso, m.config), /COM32 (boot\/syslinux\/)?whichsys\.c32\nAPPEND -pxe- pxe -sys- sys -iso- sys/);
      assert.equal(isoRead(iso, m.airootfs).length > 0, true);
    });
  }
});

describe('fixture ISOs boot from CD in QEMU', { skip: haveQemu ? false : 'qemu-system-x86_64 missing', concurrency: 2 }, () => {
  for (const tag of TAGS) {
    it(`${tag}: isolinux -> sys menu -> kernel prints the marker`, async (t) => {
      const m = loadManifest();
      const r = await bootQemu(['-cdrom', fixturePath(m.isos[tag].file), '-boot', 'd', '-nic', 'none'], { timeoutMs: BOOT_TIMEOUT_MS });
      t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
      assert.equal(r.outcome, 'marker', report(tag, r));
      assert.equal(r.marker?.sha256, m.marker.sha256);
      assert.equal(r.marker?.content, m.marker.content);
      assert.equal(r.marker?.method, 'iso');
      assert.equal(r.marker?.iso, m.isos[tag].markerIso);
    });
  }
});

describe(
  'fixture ISOs PXE-boot through QEMU user-mode TFTP',
  { skip: !haveQemu ? 'qemu-system-x86_64 missing' : !isRoot ? 'needs root (network namespace)' : false, concurrency: 2 },
  () => {
    const roots: string[] = [];
    after(() => {
      for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
    });

    for (const tag of TAGS) {
      it(`${tag}: lpxelinux.0 -> pxe menu -> HTTP entry prints the marker`, async (t) => {
        const m = loadManifest();
        const iso = m.isos[tag];
        const root = fs.mkdtempSync(path.join(os.tmpdir(), `pxe-fixture-${tag}-`));
        roots.push(root);
        execFileSync('xorriso', ['-osirrox', 'on', '-indev', fixturePath(iso.file), '-extract', '/', root], { stdio: 'ignore' });
        execFileSync('chmod', ['-R', 'u+w', root]);
        // QEMU's DHCP cannot send options 209/210, so its boot file is an iPXE script for the
        // NIC's iPXE ROM: it sets 209/210 as the manifest says (iPXE hands them to pxelinux in
        // the cached DHCP packet) and chains the ISO's lpxelinux.0.
        fs.writeFileSync(
          path.join(root, 'pxe-test.ipxe'),
          '#!ipxe\n' +
            `set 209:string ${iso.dhcp.option209}\n` +
            `set 210:string ${iso.dhcp.option210}\n` +
            `chain tftp://\${next-server}${iso.dhcp.bootFile}\n`,
        );
        const r = await bootQemu(
          ['-boot', 'n', '-netdev', `user,id=n0,tftp=${root},bootfile=/pxe-test.ipxe`, '-device', 'virtio-net-pci,netdev=n0'],
          { timeoutMs: BOOT_TIMEOUT_MS, command: isolatedHttpCommand(root) },
        );
        t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
        assert.equal(r.outcome, 'marker', report(tag, r));
        assert.equal(r.marker?.sha256, m.marker.sha256);
        assert.equal(r.marker?.content, m.marker.content);
        assert.equal(r.marker?.method, 'http');
        assert.equal(r.marker?.server, '10.0.2.2');
        assert.equal(r.marker?.iso, iso.markerIso);
        assert.match(r.log, /ip=10\.0\.2\.15:10\.0\.2\.2:10\.0\.2\.2:255\.255\.255\.0 BOOTIF=01-52-54-00-12-34-56/);
      });
    }
  },
);
