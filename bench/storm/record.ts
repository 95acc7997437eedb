/**
 * Records what one real BIOS PXE client does in a full boot, for `bench/storm.ts` to replay:
 * the shipped "Arch PXE" example in a real Node-RED in the lab (full DHCP, as the wiki's dnsmasq),
 * a QEMU BIOS machine with the iPXE NIC ROM, the ISO's own menu, its HTTP entry chosen with keys
 * (as test/e2e/pxe-boot.test.ts does). The DHCP, TFTP and HTTP nodes' outputs (every request with
 * the options the client asked for, not-found probes, aborted transfers) are written to a file and
 * reduced to bench/storm/recorded-boot.json.
 *
 *   flock /tmp/pxe-heavy.lock node --import tsx bench/storm/record.ts [--layout wiki|current|2021]
 *
 * The default, the wiki layout (archiso of the wiki's era: 210 /arch/, CONFIG menus), is what the
 * wiki's dnsmasq.conf is written for.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, labAvailable } from '../../test/lab/netns';
import { startNodeRed, type RunningRed } from '../../test/lab/node-red';
import { chooseMenuEntry, startVm, waitForBootResult } from '../../test/lab/qemu';
import { ensureFixtures, fixturePath, pxeEntryIndex } from '../../test/fixtures/fixtures';
import { archPxeFlow } from '../../test/e2e/arch-pxe-flow';
import type { Recording, Step } from './script';

const SERVER = '10.124.0.1';
const OUT = path.join(__dirname, 'recorded-boot.json');

interface Logged {
  topic: string;
  payload: Record<string, unknown>;
}

async function main(): Promise<void> {
  const why = labAvailable();
  if (why) throw new Error(`recording needs the network lab: ${why}`);
  const manifest = ensureFixtures();
  const layoutArg = process.argv.indexOf('--layout');
  const layout = (layoutArg >= 0 ? process.argv[layoutArg + 1] : 'wiki') as 'wiki' | 'current' | '2021';
  const iso = manifest.isos[layout];
  if (!iso) throw new Error(`no fixture ISO layout ${layout}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-storm-rec-'));
  const rawFile = path.join(tmp, 'servers.jsonl');
  const lab = Lab.create();
  let red: RunningRed | undefined;
  let vm: ReturnType<typeof startVm> | undefined;
  try {
    const srv = lab.netns('srv');
    const br = lab.bridge(srv, `${SERVER}/24`);
    const tap = lab.tap(srv, br);
    const flow = archPxeFlow({ iso: fixturePath(iso.file), iface: br, mode: 'full', poolStart: '10.124.0.100', poolEnd: '10.124.0.150', eventsFile: path.join(tmp, 'events.jsonl') });
    // Every DHCP, TFTP and HTTP event as a JSON line (topic + payload).
    const tab = flow.find((n) => n.type === 'tab')!;
    flow.push({ id: 'rec0000000000001', type: 'file', z: tab.id, name: 'servers', filename: rawFile, filenameType: 'str', appendNewline: true, createDir: true, overwriteFile: 'false', encoding: 'none', wires: [[]] });
    flow.push({ id: 'rec0000000000002', type: 'function', z: tab.id, name: 'topic+payload', func: 'msg.payload = { topic: msg.topic, payload: msg.payload }; return msg;', outputs: 1, wires: [['rec0000000000001']] });
    for (const n of flow) if (['pxe-dhcp', 'pxe-tftp', 'pxe-http'].includes(n.type)) (n.wires as string[][])[0]!.push('rec0000000000002');
    red = await startNodeRed(srv, flow, { port: 1880 });
    vm = startVm(srv, { tap, mac: '52:54:00:12:35:01', firmware: 'bios', rom: 'ipxe' });
    const result = waitForBootResult(vm, 240_000);
    result.catch(() => undefined);
    await chooseMenuEntry(vm, pxeEntryIndex(iso, 'http'), { labels: iso.pxeEntries.map((e) => e.menuLabel), timeoutMs: 240_000 });
    const line = (await result).line;
    if (/PXE-TEST-FAIL/.test(line)) throw new Error(`guest failed: ${line}`);
    await new Promise((r) => setTimeout(r, 2000));
    const raw = fs.readFileSync(rawFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Logged);
    fs.copyFileSync(rawFile, path.join(__dirname, 'recorded-raw.jsonl'));
    fs.writeFileSync(OUT, JSON.stringify(reduce(raw, iso.file), null, 2) + '\n');
    console.log(`recorded ${raw.length} server events; wrote ${OUT}`);
  } finally {
    vm?.cleanup();
    await red?.stop();
    await lab.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The client's steps, in order, from the servers' events (what the replay needs, nothing more). */
export function reduce(raw: Logged[], isoFile: string): Recording {
  const steps: Step[] = [];
  for (const { topic, payload: p } of raw) {
    if (topic === 'dhcp/discover') {
      steps.push({ proto: 'dhcp', vendorClass: String(p.vendorClass ?? ''), userClass: (p.userClass as string[] | undefined) ?? [], arch: Number(p.arch ?? 0) });
    } else if (topic === 'tftp/done' || topic === 'tftp/error' || topic === 'tftp/declined') {
      const options = Object.entries((p.requested as Record<string, string>) ?? {}).map(([name, value]) => ({ name, value }));
      const file = String(p.file);
      if (p.type === 'done') steps.push({ proto: 'tftp', file, options, outcome: 'done' });
      else if (p.type === 'declined') steps.push({ proto: 'tftp', file, options, outcome: 'declined' });
      else if (p.by === 'client') steps.push({ proto: 'tftp', file, options, outcome: 'aborted', abortAfterBytes: Number(p.bytesSent ?? 0) });
      else if (p.stage === 'request' && p.code === 1) steps.push({ proto: 'tftp', file, options, outcome: 'not-found' });
      else throw new Error(`a TFTP transfer failed during the recording: ${JSON.stringify(p)}`);
    } else if (topic === 'http/request') {
      const r = p.range as { start: number; end: number } | null;
      steps.push({ proto: 'http', path: String(p.path), status: Number(p.status), ...(r ? { range: `bytes=${r.start}-${r.end}` } : {}) });
    }
  }
  return {
    recordedWith: 'bench/storm/record.ts',
    how: `a QEMU BIOS machine (iPXE NIC ROM) booting ${isoFile} from the "Arch PXE" example in full DHCP mode, the ISO's HTTP menu entry chosen with keys; the DHCP, TFTP and HTTP nodes' events reduced to the client's requests`,
    iso: isoFile,
    date: new Date().toISOString(),
    steps,
  };
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(err.stack ?? err.message);
    process.exit(1);
  });
}
