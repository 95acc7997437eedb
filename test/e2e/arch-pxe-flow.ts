/**
 * The shipped "Arch PXE" example turned into a flow a test can run: the ISO path, the interface
 * and the mode substituted, the tab enabled, and the boot events written to a file as JSON lines.
 * Everything else (the NBD and NFS nodes the ISO's menu entries need, ports, exports) is the
 * example's own.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../fixtures/fixtures';
import type { Lab, Netns } from '../lab/netns';

type FlowNode = Record<string, unknown> & { id: string; type: string };

export interface ArchPxeFlowOptions {
  iso: string;
  /** Folder of extra files served beside the ISO (iPXE's snponly.efi for UEFI clients). */
  extra?: string;
  iface: string;
  mode: 'full' | 'proxy';
  poolStart?: string;
  poolEnd?: string;
  eventsFile: string;
  /** Boot rules for pxe-dhcp; the example's own (BIOS from the ISO) when absent. */
  rules?: Record<string, unknown>[];
  kernelArgs?: string;
  /** The HTTP node's iPXE menu settings (ipxeMenu, ipxeEntry, ipxeSeconds). */
  ipxeMenu?: Record<string, unknown>;
  /**
   * Make sure the ISO is exported over NBD (export 'archiso', port 10809). The example has its own
   * pxe-nbd node now; one is added only when it has none.
   */
  nbd?: boolean;
  /** The example file to start from (default 'Arch PXE.json'). */
  example?: string;
  /**
   * Messages for the DHCP node, sent as a flow would at run time: an inject node 2 s after the
   * deploy and every 5 s after (the node answers only once it serves; a repeat changes nothing).
   */
  dhcpMessages?: { topic: string; payload: unknown }[];
}

export function archPxeFlow(o: ArchPxeFlowOptions): FlowNode[] {
  const example = JSON.parse(fs.readFileSync(path.join(repoRoot, 'examples', o.example ?? 'Arch PXE.json'), 'utf8')) as FlowNode[];
  const tab = example.find((n) => n.type === 'tab')!;
  const events = example.find((n) => n.type === 'pxe-boot-events')!;
  const flow = example.map((n): FlowNode => {
    switch (n.type) {
      case 'tab':
        return { ...n, disabled: false };
      case 'pxe-iso-store':
        return { ...n, path: o.iso, extra: o.extra ?? '' };
      case 'pxe-dhcp':
        return { ...n, iface: o.iface, mode: o.mode, poolStart: o.poolStart ?? '', poolEnd: o.poolEnd ?? '', ...(o.rules ? { rules: o.rules } : {}) };
      case 'pxe-http':
        return { ...n, kernelArgs: o.kernelArgs ?? '', ...(o.ipxeMenu ?? {}) };
      default:
        return n;
    }
  });
  if (o.nbd && !example.some((n) => n.type === 'pxe-nbd')) {
    const store = example.find((n) => n.type === 'pxe-iso-store')!;
    flow.push({ id: 'e2e0000000000002', type: 'pxe-nbd', z: tab.id, name: 'NBD', store: store.id, exportName: 'archiso', address: '', port: 10809, x: 130, y: 760, wires: [[]] });
  }
  const dhcp = example.find((n) => n.type === 'pxe-dhcp')!;
  (o.dhcpMessages ?? []).forEach((m, i) => {
    flow.push({ id: `e2e00000000001${i.toString(16).padStart(2, '0')}`, type: 'inject', z: tab.id, name: m.topic, props: [{ p: 'payload' }, { p: 'topic', vt: 'str' }], repeat: '5', once: true, onceDelay: 2, topic: m.topic, payload: JSON.stringify(m.payload), payloadType: 'json', x: 130, y: 820 + 40 * i, wires: [[dhcp.id]] });
  });
  // The test's eyes: every boot event as a JSON line.
  flow.push({ id: 'e2e0000000000001', type: 'file', z: tab.id, name: 'events', filename: o.eventsFile, filenameType: 'str', appendNewline: true, createDir: true, overwriteFile: 'false', encoding: 'none', x: 500, y: 700, wires: [[]] });
  (events.wires as string[][])[0]!.push('e2e0000000000001');
  return flow;
}

export interface BootEventLine {
  stage: string;
  mac?: string;
  ip?: string;
  arch?: string;
  file?: string;
  percent?: number;
  kernel?: string;
  timeline: { stage: string }[];
}

export function readEvents(file: string): BootEventLine[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as BootEventLine);
}

/** The boot rules of the "Arch PXE (UEFI via iPXE)" example. */
export function uefiRules(): Record<string, unknown>[] {
  const example = JSON.parse(fs.readFileSync(path.join(repoRoot, 'examples', 'Arch PXE (UEFI via iPXE).json'), 'utf8')) as { type: string; rules?: unknown }[];
  return example.find((n) => n.type === 'pxe-dhcp')!.rules as Record<string, unknown>[];
}

/** A plain address-only DHCP server (busybox udhcpd) on the same segment, for proxy mode. */
export function startAddressServer(lab: Lab, srv: Netns, br: string): void {
  const router = lab.netns('router');
  const dev = lab.attach(srv, br, router, '10.123.0.2/24');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-udhcpd-'));
  const conf = path.join(dir, 'udhcpd.conf');
  fs.writeFileSync(conf, [`interface ${dev}`, 'start 10.123.0.160', 'end 10.123.0.199', `lease_file ${dir}/leases`, 'option subnet 255.255.255.0', 'option lease 600'].join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'leases'), '');
  router.spawn('/bin/busybox', ['udhcpd', '-f', conf]);
}
