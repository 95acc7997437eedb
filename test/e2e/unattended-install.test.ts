/**
 * The shipped "Arch PXE (unattended install)" example flow, run in a real Node-RED inside the
 * network lab with a QEMU BIOS client and nobody at the keyboard:
 *  - the DHCP rule boots the ISO's HTTP entry at once, its kernel and initramfs over HTTP from the
 *    flow's HTTP node (lpxelinux.0); archiso's `script=` runs the install.sh the flow publishes
 *    (the fixture initramfs does what archiso's live system does with it), the script prints its
 *    marker and downloads /install-done, and that download comes back into the flow as the
 *    example's notification;
 *  - the same boot with the rule's kernel over TFTP, to compare the two boot times (printed as
 *    `boot kernel-over-http X s vs tftp Y s (R x)`);
 *  - a rule naming an entry the ISO does not have: a node error naming the entries it has, and
 *    the client gets the ISO's own menu (not a dead boot).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable } from '../lab/netns';
import { startNodeRed, type RunningRed } from '../lab/node-red';
import { plainSerial, startVm, waitForBootResult, waitForSerial, type Vm } from '../lab/qemu';
import { ensureFixtures, fixturePath, parseMarker, repoRoot, type FixtureManifest } from '../fixtures/fixtures';
import { readEvents, startAddressServer, type BootEventLine } from './arch-pxe-flow';

const skip = labAvailable() ?? (fs.existsSync('/usr/bin/qemu-system-x86_64') ? null : 'qemu-system-x86_64 missing');
const BOOT_TIMEOUT = 240_000;
const SERVER = '10.123.0.1';
const EXAMPLE = 'Arch PXE (unattended install)';

type FlowNode = Record<string, unknown> & { id: string; type: string };

/**
 * The example as shipped, with the ISO, the interface and (optionally) the DHCP rules put in and
 * the tab enabled; the test's eyes added: boot events and notifications written as JSON lines.
 */
function unattendedFlow(o: { iso: string; iface: string; eventsFile: string; notifyFile: string; rules?: (rules: Record<string, unknown>[]) => Record<string, unknown>[] }): FlowNode[] {
  const example = JSON.parse(fs.readFileSync(path.join(repoRoot, 'examples', `${EXAMPLE}.json`), 'utf8')) as FlowNode[];
  const tab = example.find((n) => n.type === 'tab')!;
  const flow = example.map((n): FlowNode => {
    switch (n.type) {
      case 'tab':
        return { ...n, disabled: false };
      case 'pxe-iso-store':
        return { ...n, path: o.iso };
      case 'pxe-dhcp': {
        const rules = n.rules as Record<string, unknown>[];
        return { ...n, iface: o.iface, rules: o.rules ? o.rules(rules) : rules };
      }
      default:
        return n;
    }
  });
  const add = (id: string, filename: string, from: FlowNode): void => {
    flow.push({ id, type: 'file', z: tab.id, name: id, filename, filenameType: 'str', appendNewline: true, createDir: true, overwriteFile: 'false', encoding: 'none', x: 900, y: 600, wires: [[]] });
    (from.wires as string[][])[0]!.push(id);
  };
  add('e2e0000000000011', o.eventsFile, flow.find((n) => n.type === 'pxe-boot-events')!);
  // The example's notification: the template node that words it feeds the "notify" debug node.
  const notify = flow.find((n) => n.type === 'debug' && n.name === 'notify')!;
  add('e2e0000000000012', o.notifyFile, flow.find((n) => (n.wires as string[][] | undefined)?.[0]?.includes(notify.id))!);
  return flow;
}

interface Booted {
  line: string;
  /** ms from powering the VM on to the marker. */
  elapsedMs: number;
  output: string;
  log: string;
  events: BootEventLine[];
  notifications: string[];
}

describe(`PXE boots of the "${EXAMPLE}" example flow`, { skip: skip ?? false }, () => {
  let manifest: FixtureManifest;
  let tmp: string;
  before(() => {
    manifest = ensureFixtures();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-e2e-unattended-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  let n = 0;
  /**
   * Boots one BIOS client (iPXE ROM, as QEMU's NIC has) against the example in proxy mode beside
   * busybox udhcpd, and hands the running VM to `watch` (which waits for what the test needs).
   */
  async function run<T>(mac: string, rules: ((r: Record<string, unknown>[]) => Record<string, unknown>[]) | undefined, watch: (vm: Vm, red: RunningRed, files: { events: string; notify: string }) => Promise<T>): Promise<T> {
    const lab = Lab.create();
    let red: RunningRed | undefined;
    let vm: Vm | undefined;
    const files = { events: path.join(tmp, `events-${n}.jsonl`), notify: path.join(tmp, `notify-${n++}.jsonl`) };
    try {
      const srv = lab.netns('srv');
      const br = lab.bridge(srv, `${SERVER}/24`);
      const tap = lab.tap(srv, br);
      startAddressServer(lab, srv, br);
      red = await startNodeRed(srv, unattendedFlow({ iso: fixturePath(manifest.isos.current.file), iface: br, eventsFile: files.events, notifyFile: files.notify, rules }), { port: 1880 });
      vm = startVm(srv, { mac, firmware: 'bios', rom: 'ipxe', tap });
      try {
        return await watch(vm, red, files);
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- serial tail:\n${plainSerial(vm.output()).slice(-3000)}\n--- Node-RED log tail:\n${red.log().slice(-4000)}`);
      }
    } finally {
      vm?.cleanup();
      await red?.stop();
      await lab.destroy();
    }
  }

  /** An unattended boot to the marker, then the script= run to its end line and the notification. */
  async function boot(mac: string, rules?: (r: Record<string, unknown>[]) => Record<string, unknown>[]): Promise<Booted> {
    return run(mac, rules, async (vm, red, files) => {
      const poweredOn = Date.now();
      const { line } = await waitForBootResult(vm, BOOT_TIMEOUT);
      const elapsedMs = Date.now() - poweredOn;
      assert.doesNotMatch(line, /PXE-TEST-FAIL/, line);
      await waitForSerial(vm, /PXE-TEST-SCRIPT-(END|FAIL)[^\r\n]*[\r\n]/, 60_000);
      const notifications = (): string[] => (fs.existsSync(files.notify) ? fs.readFileSync(files.notify, 'utf8').split('\n').filter(Boolean) : []);
      for (let i = 0; i < 100 && notifications().length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      return { line, elapsedMs, output: plainSerial(vm.output()), log: red.log(), events: readEvents(files.events), notifications: notifications() };
    });
  }

  function assertInstalled(r: Booted): void {
    const marker = parseMarker(r.line);
    assert.equal(marker?.method, 'http', 'the rule boots the HTTP entry');
    assert.equal(marker?.sha256, manifest.marker.sha256);
    assert.equal(marker?.server, SERVER);
    // archiso's script=: the flow's install.sh, fetched from the HTTP node and run.
    assert.match(r.output, new RegExp(`PXE-TEST-SCRIPT-START http://${SERVER.replace(/\./g, '\\.')}/install\\.sh`));
    assert.match(r.output, new RegExp(`unattended install on \\S+ started, server http://${SERVER.replace(/\./g, '\\.')}\\b`), 'the published script ran (its own marker)');
    assert.match(r.output, /unattended install finished, reported to \S+\/install-done/);
    assert.match(r.output, /PXE-TEST-SCRIPT-END exit=0/);
    // Its download of /install-done came back into the flow as the example's notification.
    const client = r.events.find((e) => e.ip)?.ip;
    assert.ok(r.notifications.length >= 1, `no notification; Node-RED log tail:\n${r.log.slice(-3000)}`);
    assert.match(r.notifications[0]!, /^install finished on (::ffff:)?10\.123\.0\.\d+$/);
    if (client) assert.ok(r.notifications[0]!.endsWith(client), `${r.notifications[0]} names the client ${client}`);
  }

  const via = (r: Booted, stage: string): unknown => r.events.flatMap((e) => (e as BootEventLine & { timeline: { stage: string; via?: string }[] }).timeline).find((t) => t.stage === stage)?.via;

  let httpMs: number | undefined;

  it('boots the HTTP entry at once, kernel and initramfs over HTTP; the published install.sh runs and its /install-done comes back as the notification', async (t) => {
    const r = await boot('52:54:00:12:35:01');
    httpMs = r.elapsedMs;
    t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s, no keys pressed`);
    assertInstalled(r);
    assert.match(r.log, new RegExp(`kernel and initramfs over HTTP from http://${SERVER.replace(/\./g, '\\.')}/ \\(node HTTP\\)`));
    // lpxelinux names what it loads: the URLs of the generated config.
    assert.match(r.output, new RegExp(`Loading http://${SERVER.replace(/\./g, '\\.')}/arch/boot/x86_64/vmlinuz-linux`));
    assert.equal(via(r, 'kernel'), 'http');
    assert.equal(via(r, 'initrd'), 'http');
  });

  it('the same boot with the kernel over TFTP, to compare boot times', async (t) => {
    const r = await boot('52:54:00:12:35:02', (rules) => rules.map((x) => ({ ...x, kernelHttp: 'tftp' })));
    assertInstalled(r);
    assert.match(r.log, /kernel and initramfs over TFTP \(the rule says so\)/);
    assert.match(r.output, /Loading ::\/arch\/boot\/x86_64\/vmlinuz-linux/);
    assert.equal(via(r, 'kernel'), 'tftp');
    const line = httpMs === undefined ? `boot kernel-over-http (failed) vs tftp ${(r.elapsedMs / 1000).toFixed(1)} s` : `boot kernel-over-http ${(httpMs / 1000).toFixed(1)} s vs tftp ${(r.elapsedMs / 1000).toFixed(1)} s (${(httpMs / r.elapsedMs).toFixed(2)}x)`;
    t.diagnostic(line);
    console.log(line);
  });

  it("a rule naming an entry the ISO does not have: a node error naming its entries, and the client gets the ISO's own menu", async () => {
    const iso = manifest.isos.current;
    await run(
      '52:54:00:12:35:03',
      (rules) => rules.map((x) => ({ ...x, entry: 'arch_nope' })),
      async (vm, red) => {
        const labels = iso.pxeEntries.map((e) => e.menuLabel);
        for (const label of labels) await waitForSerial(vm, new RegExp(label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), BOOT_TIMEOUT);
        const error = /boot rule "BIOS: unattended": cannot boot the chosen menu entry \(the ISO's menu has no entry "arch_nope" \(it has: ([^)]*)\)\); its clients get the ISO's own menu/.exec(red.log());
        assert.ok(error, 'a node error for the rule');
        for (const e of iso.pxeEntries) assert.ok(error[1]!.split(', ').includes(e.label), `the error names ${e.label}: ${error[0]}`);
        // Nobody chose: the menu waits (the ISO's has no timeout), nothing booted.
        await new Promise((r) => setTimeout(r, 3000));
        assert.doesNotMatch(plainSerial(vm.output()), /PXE-TEST-(MARKER|FAIL)|Loading \S*vmlinuz/);
      },
    );
  });
});
