/**
 * Real PXE boots against the shipped "Arch PXE" example flow, running in a real Node-RED inside
 * the network lab: QEMU boots from the network, and a test passes only when the guest prints the
 * marker with the checksum of the airootfs.sfs it fetched and the boot-events node reported the
 * stages in order.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { startNodeRed, type RunningRed } from '../lab/node-red';
import { startVm, waitForSerial, type VmOptions } from '../lab/qemu';
import { ensureFixtures, fixturePath, parseMarker, type FixtureManifest } from '../fixtures/fixtures';
import { archPxeFlow, readEvents, type ArchPxeFlowOptions } from './arch-pxe-flow';

const skip = labAvailable() ?? (fs.existsSync('/usr/bin/qemu-system-x86_64') ? null : 'qemu-system-x86_64 missing');
const BOOT_TIMEOUT = 150_000;

interface BootCase {
  flow: Omit<ArchPxeFlowOptions, 'iface' | 'eventsFile'>;
  vm: Omit<VmOptions, 'tap'>;
  /** Start a separate address-only DHCP server (proxy mode). */
  addressServer?: boolean;
}

describe('PXE boots of the Arch PXE example flow', { skip: skip ?? false }, () => {
  let manifest: FixtureManifest;
  let tmp: string;
  before(() => {
    manifest = ensureFixtures();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-e2e-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  let n = 0;
  async function boot(c: BootCase): Promise<{ marker: ReturnType<typeof parseMarker>; stages: string[]; log: string }> {
    const lab = Lab.create();
    let red: RunningRed | undefined;
    let vm: ReturnType<typeof startVm> | undefined;
    const eventsFile = path.join(tmp, `events-${n++}.jsonl`);
    try {
      const srv = lab.netns('srv');
      const br = lab.bridge(srv, '10.123.0.1/24');
      const tap = lab.tap(srv, br);
      if (c.addressServer) startAddressServer(lab, srv, br);
      red = await startNodeRed(srv, archPxeFlow({ ...c.flow, iface: br, eventsFile }), { port: 1880 });
      vm = startVm(srv, { ...c.vm, tap });
      let line: RegExpMatchArray;
      try {
        line = await waitForSerial(vm, /PXE-TEST-(MARKER|FAIL)[^\r\n]*(?=[\r\n])/, BOOT_TIMEOUT);
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- Node-RED log tail:\n${red.log().slice(-4000)}`);
      }
      assert.doesNotMatch(line[0], /PXE-TEST-FAIL/, `guest failed: ${line[0]}\n${vm.output().slice(-3000)}`);
      // The last events are written right after the guest's final download.
      for (let i = 0; i < 50 && !readEvents(eventsFile).some((e) => e.stage === 'complete'); i++) await new Promise((r) => setTimeout(r, 100));
      return { marker: parseMarker(line[0]), stages: readEvents(eventsFile).map((e) => e.stage), log: red.log() };
    } finally {
      vm?.cleanup();
      await red?.stop();
      await lab.destroy();
    }
  }

  function assertStagesInOrder(stages: string[], expected: string[]): void {
    const firsts = expected.map((s) => stages.indexOf(s));
    assert.ok(firsts.every((i) => i >= 0), `stages ${JSON.stringify(stages)} lack one of ${expected}`);
    assert.deepEqual([...firsts].sort((a, b) => a - b), firsts, `stages out of order: ${JSON.stringify(stages)}`);
  }

  for (const layout of ['current', '2021', 'wiki'] as const) {
    it(`BIOS with the iPXE ROM, full DHCP mode, ${layout} ISO layout: pxelinux menu → TFTP kernel → HTTP rootfs`, async () => {
      const iso = manifest.isos[layout];
      const r = await boot({
        flow: { iso: fixturePath(iso.file), mode: 'full', poolStart: '10.123.0.100', poolEnd: '10.123.0.150' },
        vm: { mac: '52:54:00:12:34:01', firmware: 'bios', rom: 'ipxe' },
      });
      assert.equal(r.marker?.sha256, manifest.marker.sha256);
      assert.equal(r.marker?.content, manifest.marker.content);
      assert.equal(r.marker?.method, 'http');
      assert.equal(r.marker?.iso, iso.markerIso, "the ISO's own PXE menu chose the kernel line");
      assertStagesInOrder(r.stages, ['dhcp', 'loader', 'kernel', 'initrd', 'rootfs', 'complete']);
    });
  }

  it('BIOS with the iPXE ROM, proxy mode beside a separate address-only DHCP server (busybox udhcpd)', async () => {
    const iso = manifest.isos.current;
    const r = await boot({
      flow: { iso: fixturePath(iso.file), mode: 'proxy' },
      vm: { mac: '52:54:00:12:34:02', firmware: 'bios', rom: 'ipxe' },
      addressServer: true,
    });
    assert.equal(r.marker?.sha256, manifest.marker.sha256);
    assert.equal(r.marker?.iso, iso.markerIso);
    assertStagesInOrder(r.stages, ['dhcp', 'loader', 'kernel', 'initrd', 'rootfs', 'complete']);
  });

  it("UEFI x64 (OVMF's own PXE): snponly.efi over TFTP, then the iPXE script, kernel, initramfs and rootfs over HTTP", async () => {
    const r = await boot({
      flow: {
        iso: fixturePath(manifest.isos.current.file),
        extra: fixturePath('ipxe'),
        mode: 'full',
        poolStart: '10.123.0.100',
        poolEnd: '10.123.0.150',
        rules: uefiRules(),
        kernelArgs: 'console=ttyS0',
      },
      vm: { mac: '52:54:00:12:34:03', firmware: 'uefi', rom: 'none' },
    });
    assert.equal(r.marker?.sha256, manifest.marker.sha256);
    assert.equal(r.marker?.method, 'http');
    assertStagesInOrder(r.stages, ['dhcp', 'loader', 'kernel', 'initrd', 'rootfs', 'complete']);
  });

  it('BIOS with the iPXE ROM, root filesystem over NBD: the whole ISO exported by pxe-nbd, mounted by the initramfs', async (t) => {
    if (!manifest.nbdClient) return t.skip('the initramfs has no nbd-client (the build host lacked it)');
    // The iPXE kernel line of the "Arch PXE (NBD)" example, served beside the ISO.
    const extra = fs.mkdtempSync(path.join(tmp, 'nbd-'));
    const iso = manifest.isos.current;
    fs.writeFileSync(
      path.join(extra, 'nbd.ipxe'),
      [
        '#!ipxe',
        `kernel http://\${next-server}${iso.kernel} archisobasedir=arch archiso_nbd_srv=\${next-server} ip=dhcp console=ttyS0 initrd=initramfs-linux.img`,
        `initrd http://\${next-server}${iso.initrd.at(-1)}`,
        'boot',
        '',
      ].join('\n'),
    );
    const r = await boot({
      flow: {
        iso: fixturePath(iso.file),
        extra,
        nbd: true,
        mode: 'full',
        poolStart: '10.123.0.100',
        poolEnd: '10.123.0.150',
        rules: [{ name: 'iPXE: NBD', match: 'ipxe', value: '', ipxe: 'yes', bootFile: 'http://{next-server}/nbd.ipxe' }],
      },
      vm: { mac: '52:54:00:12:34:04', firmware: 'bios', rom: 'ipxe' },
    });
    assert.equal(r.marker?.method, 'nbd');
    assert.equal(r.marker?.sha256, manifest.marker.sha256);
    assertStagesInOrder(r.stages, ['dhcp', 'kernel', 'initrd', 'rootfs']);
  });
});

/** The boot rules of the "Arch PXE (UEFI via iPXE)" example. */
function uefiRules(): Record<string, unknown>[] {
  const example = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'examples', 'Arch PXE (UEFI via iPXE).json'), 'utf8')) as { type: string; rules?: unknown }[];
  return example.find((n) => n.type === 'pxe-dhcp')!.rules as Record<string, unknown>[];
}

/** A plain address-only DHCP server (busybox udhcpd) on the same segment, for proxy mode. */
function startAddressServer(lab: Lab, srv: Netns, br: string): void {
  const router = lab.netns('router');
  const dev = lab.attach(srv, br, router, '10.123.0.2/24');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-udhcpd-'));
  const conf = path.join(dir, 'udhcpd.conf');
  fs.writeFileSync(conf, [`interface ${dev}`, 'start 10.123.0.160', 'end 10.123.0.199', `lease_file ${dir}/leases`, 'option subnet 255.255.255.0', 'option lease 600'].join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'leases'), '');
  router.spawn('/bin/busybox', ['udhcpd', '-f', conf]);
}
