/**
 * Two ISOs behind one set of servers, booted for real: the shipped "Arch PXE (several ISOs)"
 * example, its store's further ISO set to another archiso layout, and DHCP rules that pick
 * "ISO X, entry Y" per MAC. Nobody presses a key. A boot passes only when the guest prints the
 * marker of the ISO that was chosen (each fixture's initramfs carries its own tag), read through the
 * method chosen, from our server, and the boot-events node said which entry and ISO it booted.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { startNodeRed, type RunningRed } from '../lab/node-red';
import { startVm, waitForBootResult } from '../lab/qemu';
import { ensureFixtures, fixturePath, parseMarker, type FixtureManifest } from '../fixtures/fixtures';
import { archPxeFlow, readEvents, uefiRules } from './arch-pxe-flow';

const skip = labAvailable() ?? (fs.existsSync('/usr/bin/qemu-system-x86_64') ? null : 'qemu-system-x86_64 missing');
const BOOT_TIMEOUT = 240_000;
const SERVER = '10.123.0.1';
const PREFIX = 'arch-2021';
/** What the HTTP node's iPXE script boots at once (UEFI clients). */
const UEFI_ENTRY = `${PREFIX}/arch64_nfs`;

interface Case {
  mac: string;
  /** 'uefi': OVMF's own PXE chain-loads iPXE, whose script (the HTTP node's iPXE menu) boots the entry. */
  firmware?: 'uefi';
  /** The rule's choice: an entry label, '<prefix>/<label>' for the further ISO. */
  entry: string;
  menu: 'now' | 'timeout';
  method: 'nbd' | 'nfs' | 'http';
  /** The marker's iso= tag and the ISO file the events must name. */
  layout: 'current' | '2021';
}

type EventLine = ReturnType<typeof readEvents>[number] & { entry?: string; iso?: string };

describe('several ISOs behind one server (the "Arch PXE (several ISOs)" example)', { skip: skip ?? false }, () => {
  let manifest: FixtureManifest;
  let tmp: string;
  let lab: Lab;
  let srv: Netns;
  let br: string;
  let red: RunningRed;
  let eventsFile: string;

  // The current layout at the root, the 2021 one (loader in /syslinux/, other entry names) under /arch-2021/.
  const cases = (): Case[] => [
    { mac: '52:54:00:12:35:01', entry: `${PREFIX}/arch64_nfs`, menu: 'timeout', method: 'nfs', layout: '2021' },
    { mac: '52:54:00:12:35:02', entry: `${PREFIX}/arch64_http`, menu: 'now', method: 'http', layout: '2021' },
    { mac: '52:54:00:12:35:03', entry: 'arch_http', menu: 'now', method: 'http', layout: 'current' },
    { mac: '52:54:00:12:35:04', entry: `${PREFIX}/arch64_nbd`, menu: 'now', method: 'nbd', layout: '2021' },
    { mac: '52:54:00:12:35:05', entry: UEFI_ENTRY, menu: 'now', method: 'nfs', layout: '2021', firmware: 'uefi' },
  ];

  before(async () => {
    manifest = ensureFixtures();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-multi-e2e-'));
    eventsFile = path.join(tmp, 'events.jsonl');
    lab = Lab.create();
    srv = lab.netns('srv');
    br = lab.bridge(srv, `${SERVER}/24`);
    // BIOS machines: a rule per MAC. UEFI machines: the UEFI example's rules (iPXE from the extra
    // folder, then the HTTP node's iPXE script), the script set to boot a further ISO's entry.
    const rules = [
      ...cases()
        .filter((c) => !c.firmware)
        .map((c) => ({ name: `${c.layout} ${c.method}`, match: 'mac', value: c.mac, ipxe: 'any', menu: c.menu, entry: c.entry, menuSeconds: 2 })),
      ...uefiRules(),
    ];
    const flow = archPxeFlow({
      example: 'Arch PXE (several ISOs).json',
      iso: fixturePath(manifest.isos.current!.file),
      extra: fixturePath('ipxe'),
      mode: 'full',
      poolStart: '10.123.0.100',
      poolEnd: '10.123.0.150',
      iface: br,
      eventsFile,
      rules,
      kernelArgs: 'console=ttyS0',
      ipxeMenu: { ipxeMenu: 'now', ipxeEntry: UEFI_ENTRY },
    });
    // The example's further ISO, set as a user does in the store's editor: a path and a prefix.
    const store = flow.find((n) => n.type === 'pxe-iso-store')!;
    assert.equal((store.isos as unknown[]).length, 1, 'the example has one further ISO');
    store.isos = [{ path: fixturePath(manifest.isos['2021']!.file), prefix: PREFIX }];
    red = await startNodeRed(srv, flow, { port: 1880 });
  });

  after(async () => {
    await red?.stop();
    await lab?.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  for (const c of cases()) {
    it(`${c.firmware ? "UEFI, the HTTP node's iPXE script" : `BIOS, rule for ${c.mac}`}: ${c.menu === 'now' ? 'at once' : 'after 2 s at the top menu'}, ${c.layout === 'current' ? 'the main ISO' : `the ${c.layout} ISO under /${PREFIX}/`}, entry ${c.entry} -> ${c.method.toUpperCase()} -> that ISO's marker`, async (t) => {
      if (c.method === 'nbd' && !manifest.nbdClient) return t.skip('the initramfs has no nbd-client (the build host lacked it)');
      const iso = manifest.isos[c.layout]!;
      const tap = lab.tap(srv, br);
      const vm = startVm(srv, c.firmware ? { tap, mac: c.mac, firmware: 'uefi', rom: 'none' } : { tap, mac: c.mac, firmware: 'bios', rom: 'ipxe' });
      const poweredOn = Date.now();
      try {
        let line: string;
        try {
          line = (await waitForBootResult(vm, BOOT_TIMEOUT)).line;
        } catch (err) {
          throw new Error(`${(err as Error).message}\n${vm.output().slice(-3000)}\n--- Node-RED log tail:\n${red.log().slice(-4000)}`);
        }
        const elapsed = Date.now() - poweredOn;
        assert.doesNotMatch(line, /PXE-TEST-FAIL/, `guest failed: ${line}\n${vm.output().slice(-3000)}\n--- Node-RED log tail:\n${red.log().slice(-3000)}`);
        const marker = parseMarker(line);
        assert.ok(marker, `marker line not parsed: ${JSON.stringify(line)}`);
        t.diagnostic(`marker after ${(elapsed / 1000).toFixed(1)} s, no keys pressed`);
        assert.equal(marker.iso, iso.markerIso, 'the chosen ISO booted (its own initramfs)');
        assert.equal(marker.method, c.method);
        assert.equal(marker.sha256, manifest.marker.sha256);
        assert.equal(marker.server, SERVER);
        const out = vm.output();
        if (c.layout === '2021') {
          // The further ISO's files and parameters, pointed at it.
          // iPXE cannot expand ${pxeserver}: its script names our server outright.
          const server = c.firmware ? SERVER : '${pxeserver}';
          const want = { nfs: `archiso_nfs_srv=${server}:/run/archiso/bootmnt/${PREFIX}`, http: `archiso_http_srv=http://${server}/${PREFIX}/`, nbd: `archiso_nbd_name=${PREFIX}` }[c.method];
          assert.ok(out.includes(want), `kernel command line has ${want}`);
        }
        if (c.menu === 'timeout') {
          // The top menu was on screen: both ISOs' entries.
          assert.ok(out.includes(`/${PREFIX}/: ${iso.pxeEntries[1]!.menuLabel}`), 'the further ISO\'s entry in the top menu');
          assert.ok(out.includes(manifest.isos.current!.pxeEntries[0]!.menuLabel), 'the main ISO\'s entry in the top menu');
        }
        // The boot events say which entry and which ISO this client booted.
        const mine = (): EventLine[] => (readEvents(eventsFile) as EventLine[]).filter((e) => e.mac === c.mac);
        for (let i = 0; i < 50 && !mine().some((e) => e.stage === 'rootfs'); i++) await new Promise((r) => setTimeout(r, 100));
        const kernel = mine().find((e) => e.stage === 'kernel');
        assert.ok(kernel, `a boot/kernel event for ${c.mac}: ${JSON.stringify(mine().map((e) => e.stage))}`);
        // The iPXE script is the HTTP node's choice, not a DHCP rule's: the ISO is known from the files.
        if (!c.firmware) assert.equal(kernel.entry, c.entry.slice(c.entry.lastIndexOf('/') + 1));
        assert.equal(kernel.iso, iso.file);
        assert.equal(mine().find((e) => e.stage === 'rootfs')?.iso, iso.file);
      } finally {
        vm.cleanup();
      }
    });
  }
});
