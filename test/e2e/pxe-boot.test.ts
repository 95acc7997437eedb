/**
 * Real PXE boots against the shipped "Arch PXE" example flow, running in a real Node-RED inside
 * the network lab: QEMU boots from the network, the ISO's own (unedited) PXE menu waits, a test
 * picks its entry with keys on the serial console as a user would (Enter alone: NBD, the entry the
 * menu highlights; Down Enter: NFS; Down Down Enter: HTTP), and a test passes only when the guest
 * prints the marker with the checksum of the airootfs.sfs it read and the boot-events node
 * reported the stages in order.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable } from '../lab/netns';
import { startNodeRed, type RunningRed } from '../lab/node-red';
import { chooseMenuEntry, startVm, waitForBootResult, type MenuChoice, type VmOptions } from '../lab/qemu';
import { ensureFixtures, fixturePath, parseMarker, pxeEntryIndex, type FixtureIso, type FixtureManifest, type Marker } from '../fixtures/fixtures';
import { archPxeFlow, readEvents, startAddressServer, uefiRules, type ArchPxeFlowOptions } from './arch-pxe-flow';

const skip = labAvailable() ?? (fs.existsSync('/usr/bin/qemu-system-x86_64') ? null : 'qemu-system-x86_64 missing');
const BOOT_TIMEOUT = 240_000;
const SERVER = '10.123.0.1';

type Method = 'nbd' | 'nfs' | 'http';

interface BootCase {
  flow: Omit<ArchPxeFlowOptions, 'iface' | 'eventsFile'>;
  vm: Omit<VmOptions, 'tap'>;
  /** Start a separate address-only DHCP server (proxy mode). */
  addressServer?: boolean;
  /** The entry of this ISO's PXE menu to choose with keys; none when iPXE boots a script. */
  entry?: { iso: FixtureIso; method: Method };
  /** Power the machine on only once Node-RED's log shows this (a choice set by message first). */
  startAfterLog?: RegExp;
}

interface Booted {
  marker: Marker | null;
  stages: string[];
  log: string;
  menu: MenuChoice | null;
  /** ms from powering the VM on to the marker. */
  elapsedMs: number;
  /** The guest's serial console. */
  output: string;
}

/** The stages each way of reaching the root image must show, in this order. */
const STAGES: Record<Method, string[]> = {
  http: ['dhcp', 'loader', 'kernel', 'initrd', 'rootfs', 'complete'],
  // copytoram reads airootfs.sfs whole over NFS.
  nfs: ['dhcp', 'loader', 'kernel', 'initrd', 'rootfs', 'complete'],
  nbd: ['dhcp', 'loader', 'kernel', 'initrd', 'rootfs'],
};

describe('PXE boots of the Arch PXE example flow', { skip: skip ?? false }, () => {
  let manifest: FixtureManifest;
  let tmp: string;
  before(() => {
    manifest = ensureFixtures();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-e2e-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  let n = 0;
  async function boot(c: BootCase, expectStages: string[]): Promise<Booted> {
    const lab = Lab.create();
    let red: RunningRed | undefined;
    let vm: ReturnType<typeof startVm> | undefined;
    const eventsFile = path.join(tmp, `events-${n++}.jsonl`);
    try {
      const srv = lab.netns('srv');
      const br = lab.bridge(srv, `${SERVER}/24`);
      const tap = lab.tap(srv, br);
      if (c.addressServer) startAddressServer(lab, srv, br);
      red = await startNodeRed(srv, archPxeFlow({ ...c.flow, iface: br, eventsFile }), { port: 1880 });
      // The DHCP node serves once the bridge has a carrier: another machine on the segment gives it one.
      if (c.startAfterLog) lab.attach(srv, br, lab.netns('peer'), '10.123.0.3/24');
      for (const t0 = Date.now(); c.startAfterLog && !c.startAfterLog.test(red.log()); ) {
        if (Date.now() - t0 > 30_000) throw new Error(`Node-RED never logged ${c.startAfterLog}:\n${red.log().slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const poweredOn = Date.now();
      vm = startVm(srv, { ...c.vm, tap });
      const result = waitForBootResult(vm, BOOT_TIMEOUT);
      result.catch(() => undefined); // awaited below; a failure before the menu surfaces there too
      let menu: MenuChoice | null = null;
      let line: string;
      try {
        if (c.entry) {
          const { iso, method } = c.entry;
          menu = await Promise.race([
            chooseMenuEntry(vm, pxeEntryIndex(iso, method), { labels: iso.pxeEntries.map((e) => e.menuLabel), timeoutMs: BOOT_TIMEOUT }),
            result.then((r) => Promise.reject(new Error(`the boot ended before a menu entry was chosen: ${r.line}`))),
          ]);
        }
        line = (await result).line;
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- Node-RED log tail:\n${red.log().slice(-4000)}`);
      }
      const elapsedMs = Date.now() - poweredOn;
      assert.doesNotMatch(line, /PXE-TEST-FAIL/, `guest failed: ${line}\n${vm.output().slice(-3000)}\n--- Node-RED log tail:\n${red.log().slice(-3000)}`);
      // The last events are written right after the guest's final read.
      const have = (): boolean => expectStages.every((s) => readEvents(eventsFile).some((e) => e.stage === s));
      for (let i = 0; i < 50 && !have(); i++) await new Promise((r) => setTimeout(r, 100));
      const marker = parseMarker(line);
      assert.ok(marker, `marker line not parsed: ${JSON.stringify(line)}`);
      return { marker, stages: readEvents(eventsFile).map((e) => e.stage), log: red.log(), menu, elapsedMs, output: vm.output() };
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

  const KEYS: Record<Method, string[]> = { nbd: ['enter'], nfs: ['down', 'enter'], http: ['down', 'down', 'enter'] };

  /** One BIOS boot of `layout`'s ISO through the example, `method`'s entry chosen by keys. */
  async function menuBoot(t: { diagnostic(s: string): void }, layout: 'current' | '2021' | 'wiki', method: Method, mode: 'full' | 'proxy', mac: string): Promise<void> {
    const iso = manifest.isos[layout];
    const r = await boot(
      {
        flow: mode === 'full' ? { iso: fixturePath(iso.file), mode, poolStart: '10.123.0.100', poolEnd: '10.123.0.150' } : { iso: fixturePath(iso.file), mode },
        vm: { mac, firmware: 'bios', rom: 'ipxe' },
        addressServer: mode === 'proxy',
        entry: { iso, method },
      },
      STAGES[method],
    );
    t.diagnostic(`menu after ${((r.menu?.menuAfterMs ?? 0) / 1000).toFixed(1)} s, keys ${r.menu?.keys.join(' ')} (retries ${r.menu?.retries}, redraws ${r.menu?.redraws}), marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
    assert.deepEqual(r.menu?.keys.filter((k) => k !== 'ctrlL').slice(-KEYS[method].length), KEYS[method]);
    assert.equal(r.marker?.sha256, manifest.marker.sha256);
    assert.equal(r.marker?.content, manifest.marker.content);
    assert.equal(r.marker?.method, method);
    assert.equal(r.marker?.server, SERVER, "${pxeserver}: the boot server field of pxelinux's ip=, our server in either mode");
    assert.equal(r.marker?.iso, iso.markerIso, "the ISO's own initramfs image");
    assertStagesInOrder(r.stages, STAGES[method]);
  }

  let mac = 0x10;
  const nextMac = (): string => `52:54:00:12:34:${(mac++).toString(16).padStart(2, '0')}`;

  for (const mode of ['full', 'proxy'] as const) {
    for (const method of ['nbd', 'nfs', 'http'] as const) {
      const keys = KEYS[method].map((k) => k[0].toUpperCase() + k.slice(1)).join(' ');
      it(`BIOS, iPXE ROM, ${mode === 'full' ? 'full DHCP' : 'proxy mode beside busybox udhcpd'}, current ISO: ${keys} -> ${method.toUpperCase()} entry -> marker`, async (t) => {
        await menuBoot(t, 'current', method, mode, nextMac());
      });
    }
  }

  for (const layout of ['2021', 'wiki'] as const) {
    for (const method of ['nfs', 'http'] as const) {
      it(`BIOS, iPXE ROM, full DHCP, ${layout} ISO layout: ${method.toUpperCase()} entry -> marker`, async (t) => {
        await menuBoot(t, layout, method, 'full', nextMac());
      });
    }
  }

  // Nobody at the keyboard: the rule picks the entry (the ISO's files stay as shipped).
  it('unattended, BIOS, full DHCP, current ISO: a rule boots the NFS entry at once, with its extra kernel parameters', async (t) => {
    const iso = manifest.isos.current;
    const entry = iso.pxeEntries[pxeEntryIndex(iso, 'nfs')]!.label;
    const r = await boot(
      {
        flow: {
          iso: fixturePath(iso.file),
          mode: 'full',
          poolStart: '10.123.0.100',
          poolEnd: '10.123.0.150',
          rules: [{ name: 'BIOS', match: 'arch', value: '0', ipxe: 'any', menu: 'now', entry, kernelArgs: 'console=ttyS0 pxeflow_e2e={next-server}' }],
        },
        vm: { mac: '52:54:00:12:34:05', firmware: 'bios', rom: 'ipxe' },
      },
      STAGES.nfs,
    );
    t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s, no keys pressed`);
    assert.equal(r.marker?.method, 'nfs');
    assert.equal(r.marker?.sha256, manifest.marker.sha256);
    assert.equal(r.marker?.server, SERVER);
    assert.match(r.output, /Command line: .*archiso_nfs_srv=\$\{pxeserver\}:\/run\/archiso\/bootmnt.* console=ttyS0 pxeflow_e2e=10\.123\.0\.1\b/, 'the extra parameters reach the kernel, {next-server} as our address');
    assertStagesInOrder(r.stages, STAGES.nfs);
  });

  it('unattended by message, BIOS, full DHCP, current ISO: the rules show the menu, a boot/menu message for this MAC boots the NBD entry at once', async (t) => {
    const iso = manifest.isos.current;
    const entry = iso.pxeEntries[pxeEntryIndex(iso, 'nbd')]!.label;
    const mac = '52:54:00:12:34:07';
    const r = await boot(
      {
        flow: {
          iso: fixturePath(iso.file),
          mode: 'full',
          poolStart: '10.123.0.100',
          poolEnd: '10.123.0.150',
          dhcpMessages: [{ topic: 'boot/menu', payload: { mac, entry } }],
        },
        vm: { mac, firmware: 'bios', rom: 'ipxe' },
        // As a user would: the choice is set, then the machine is switched on.
        startAfterLog: new RegExp(`${mac}: kernel and initramfs over`),
      },
      STAGES.nbd,
    );
    t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s, no keys pressed`);
    assert.equal(r.marker?.method, 'nbd');
    assert.equal(r.marker?.sha256, manifest.marker.sha256);
    assert.equal(r.marker?.server, SERVER);
    assertStagesInOrder(r.stages, STAGES.nbd);
  });

  it("unattended, BIOS, proxy mode, current ISO: the ISO's menu is shown and a rule boots the HTTP entry after 2 s", async (t) => {
    const iso = manifest.isos.current;
    const entry = iso.pxeEntries[pxeEntryIndex(iso, 'http')]!.label;
    const r = await boot(
      {
        flow: { iso: fixturePath(iso.file), mode: 'proxy', rules: [{ name: 'BIOS', match: 'arch', value: '0', ipxe: 'any', menu: 'timeout', entry, menuSeconds: 2 }] },
        vm: { mac: '52:54:00:12:34:06', firmware: 'bios', rom: 'ipxe' },
        addressServer: true,
      },
      STAGES.http,
    );
    t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s, no keys pressed`);
    assert.ok(r.output.includes(iso.pxeEntries[0]!.menuLabel), "the ISO's own menu was on screen");
    assert.equal(r.marker?.method, 'http');
    assert.equal(r.marker?.sha256, manifest.marker.sha256);
    assertStagesInOrder(r.stages, STAGES.http);
  });

  it("UEFI x64 (OVMF's own PXE): snponly.efi over TFTP, then the iPXE script, kernel, initramfs and rootfs over HTTP", async (t) => {
    const r = await boot(
      {
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
      },
      STAGES.http,
    );
    t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
    assert.equal(r.marker?.sha256, manifest.marker.sha256);
    assert.equal(r.marker?.method, 'http');
    assertStagesInOrder(r.stages, STAGES.http);
  });

  it("UEFI x64 unattended: the HTTP node's iPXE script is the ISO's menu and boots its NFS entry after 2 s", async (t) => {
    const r = await boot(
      {
        flow: {
          iso: fixturePath(manifest.isos.current.file),
          extra: fixturePath('ipxe'),
          mode: 'full',
          poolStart: '10.123.0.100',
          poolEnd: '10.123.0.150',
          rules: uefiRules(),
          kernelArgs: 'console=ttyS0',
          ipxeMenu: { ipxeMenu: 'timeout', ipxeEntry: manifest.isos.current.pxeEntries[pxeEntryIndex(manifest.isos.current, 'nfs')]!.label, ipxeSeconds: 2 },
        },
        vm: { mac: '52:54:00:12:34:07', firmware: 'uefi', rom: 'none' },
      },
      STAGES.nfs,
    );
    t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s, no keys pressed`);
    assert.equal(r.marker?.method, 'nfs');
    assert.equal(r.marker?.server, SERVER, 'the NFS server named in the script is ours');
    assert.equal(r.marker?.sha256, manifest.marker.sha256);
    assertStagesInOrder(r.stages, STAGES.nfs);
  });

  it('BIOS with the iPXE ROM, the "Arch PXE (NBD)" example\'s iPXE kernel line: the whole ISO exported by pxe-nbd, mounted by the initramfs', async (t) => {
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
    const r = await boot(
      {
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
      },
      ['dhcp', 'kernel', 'initrd', 'rootfs'],
    );
    t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
    assert.equal(r.marker?.method, 'nbd');
    assert.equal(r.marker?.sha256, manifest.marker.sha256);
    assertStagesInOrder(r.stages, ['dhcp', 'kernel', 'initrd', 'rootfs']);
  });
});
